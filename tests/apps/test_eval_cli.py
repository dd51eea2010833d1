"""`lvlm eval` end to end on small files, in process and once through the installed console script."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from lvlm.apps.eval import main
from lvlm.core.outputs import OutputError


def run(root, *args):
    return main([a.replace("@", str(root) + "/") for a in args])


def test_pope_cli_writes_json_markdown_and_tensorboard(eval_files, capsys):
    assert (
        run(eval_files, "pope", "--predictions", "@pope_preds.jsonl", "--questions-dir", "@pope", "--out", "@out") == 0
    )
    result = json.loads((eval_files / "out" / "pope.json").read_text())
    # adversarial: TP, TN -> 1; popular: TP, FP -> 1/2; random: FN ("No, not"), TN -> 1/2; mean 2/3
    assert result["metrics"]["adversarial/accuracy"] == 1.0
    assert result["metrics"]["mean/accuracy"] == pytest.approx(2 / 3)
    # yes-ratio over predictions: 1/2, 2/2, 0/2 -> mean 1/2 (over labels it would be 1/2 in every split)
    assert result["metrics"]["popular/yes_ratio"] == 1.0 and result["metrics"]["random/yes_ratio"] == 0.0
    assert (eval_files / "out" / "pope.md").read_text().startswith("# pope\n\n| category | n | accuracy |")
    assert "mean" in capsys.readouterr().out

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(eval_files / "out" / "tensorboard" / "pope"))
    events.Reload()
    assert "eval/pope/mean/accuracy" in events.Tags()["scalars"]
    assert events.Scalars("eval/pope/mean/accuracy")[0].value == pytest.approx(2 / 3)


def test_vqa_and_video_qa_exact(eval_files):
    args = ["--predictions", "@vqa_preds.jsonl", "--annotations", "@vqa_annotations.json", "--out", "@out"]
    assert run(eval_files, "vqa", *args, "--no-tensorboard") == 0
    # (1.0 + 0.9) / 2
    assert json.loads((eval_files / "out" / "vqa.json").read_text())["metrics"]["accuracy"] == pytest.approx(0.95)
    qa = ["--questions", "@MSVD_Zero_Shot_QA/test_q.json", "--answers", "@MSVD_Zero_Shot_QA/test_a.json"]
    assert (
        run(eval_files, "video-qa", "--predictions", "@msvd_preds.jsonl", *qa, "--out", "@out", "--no-tensorboard") == 0
    )
    result = json.loads((eval_files / "out" / "video-qa.json").read_text())
    # dancing in "the man is dancing": yes; two vs three: no; red: yes -> 2/3; score (5 + 0 + 5) / 3
    assert result["metrics"] == {"accuracy": pytest.approx(2 / 3), "score": pytest.approx(10 / 3)}
    assert result["config"]["judge"]["kind"] == "exact"


def test_video_qa_openai_cli_uses_the_cache_on_rerun(eval_files, chat_server, monkeypatch):
    monkeypatch.setenv("JUDGE_API_KEY", "sk-local")
    args = ["video-qa", "--predictions", "@msvd_preds.jsonl", "--judge", "openai", "--base-url", chat_server.base_url,
            "--judge-model", "judge-7b", "--api-key-env", "JUDGE_API_KEY", "--questions",
            "@MSVD_Zero_Shot_QA/test_q.json", "--answers", "@MSVD_Zero_Shot_QA/test_a.json", "--out", "@out",
            "--no-tensorboard"]  # fmt: skip
    assert run(eval_files, *args) == 0
    first = json.loads((eval_files / "out" / "video-qa.json").read_text())
    # server: yes/4, no/1, yes/4 -> accuracy 2/3, score 3
    assert first["metrics"] == {"accuracy": pytest.approx(2 / 3), "score": 3.0}
    assert len(chat_server.requests) == 3 and (eval_files / "out" / "judge-cache" / "judgments.jsonl").is_file()
    with pytest.raises(OutputError, match="video-qa.json exists and is not empty"):
        run(eval_files, *args)  # earlier results are never replaced silently
    assert run(eval_files, *args, "--overwrite") == 0
    second = json.loads((eval_files / "out" / "video-qa.json").read_text())
    assert len(chat_server.requests) == 3 and second["metrics"] == first["metrics"]
    assert second["counts"]["cache_hits"] == 3


def test_bad_input_names_file_and_field(eval_files, capsys):
    from lvlm.core.errors import UserError

    (eval_files / "bad.jsonl").write_text('{"key": "1", "question_id": 1}\n')
    skipped_first = r"have no prediction .*1 prediction records skipped; first: .*bad.jsonl:line 1: missing field"
    with pytest.raises(UserError, match=skipped_first):
        run(eval_files, "pope", "--predictions", "@bad.jsonl", "--questions-dir", "@pope", "--out", "@out")
    (eval_files / "bad.jsonl").write_text("{not json\n")
    with pytest.raises(UserError, match=r"bad.jsonl: no usable JSON object \(.*bad.jsonl:line 1: not valid JSON"):
        run(eval_files, "synthetic", "--predictions", "@bad.jsonl", "--out", "@out")
    with pytest.raises(UserError, match="--judge openai needs --base-url and --judge-model"):
        run(eval_files, "video-qa", "--predictions", "@msvd_preds.jsonl", "--judge", "openai", "--out", "@out")


def test_console_script(eval_files):
    lvlm = shutil.which("lvlm") or str(Path(sys.executable).parent / "lvlm")
    args = [lvlm, "eval", "synthetic", "--predictions", "synthetic_preds.jsonl", "--out", "out", "--no-tensorboard"]
    done = subprocess.run(args, cwd=eval_files, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    # color/image: 1 of 1; color/video: 1 of 2 ("Blue." matches, "green" does not); chance 1/4 everywhere
    lines = [line.split() for line in done.stdout.splitlines()]
    assert ["color", "image", "1", "1.0000", "0.2500"] in lines and ["color", "video", "2", "0.5000", "0.2500"] in lines
    assert ["all", "all", "3", "0.6667", "0.2500"] in lines
    assert (eval_files / "out" / "synthetic.md").is_file()
