"""`lvlm eval` integrity: any encoding, bad and repeated records skipped and listed (never counted twice),
no metric from unjudged items, outputs that never overwrite inputs or earlier results."""

from __future__ import annotations

import json
import socket

import pytest

from lvlm.apps.cli import main as lvlm_main
from lvlm.core.outputs import OutputError
from lvlm.eval import evaluate_predictions

CHOICES = ["red", "green", "blue", "yellow"]


def lvlm_eval(*argv) -> int:
    with pytest.raises(SystemExit) as done:
        lvlm_main(["eval", *map(str, argv)])
    return done.value.code


def synthetic(key: str, answer: str, prediction: str) -> dict:
    return {"key": key, "question_type": "color", "modality": "image", "choices": CHOICES, "answer": answer,
            "prediction": prediction}  # fmt: skip


def test_latin1_file_is_read_and_the_encoding_reported(tmp_path):
    path = tmp_path / "preds.jsonl"
    lines = [json.dumps(synthetic("s0", "rouge foncé", "rouge foncé"), ensure_ascii=False)]
    path.write_bytes(("\n".join(lines) + "\n").encode("latin-1"))  # é is the single byte 0xE9: not UTF-8
    result = evaluate_predictions("synthetic", path)
    assert result.metrics["accuracy"] == 1.0 and result.config["encoding"] == "latin-1"
    assert evaluate_predictions("synthetic", path, encoding="cp1252").metrics["accuracy"] == 1.0
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    assert evaluate_predictions("synthetic", path).config["encoding"] == "utf-8"


def test_bad_and_repeated_records_are_skipped_listed_and_never_counted_twice(tmp_path):
    path = tmp_path / "preds.jsonl"
    rows = [json.dumps(synthetic("s0", "red", "red")), "{not json", "[1, 2]",
            json.dumps(synthetic("s0", "red", "blue")), json.dumps({"key": "s2", "answer": "red"}),
            json.dumps(synthetic("s1", "red", "green"))]  # fmt: skip
    path.write_text("\n".join(rows) + "\n")
    result = evaluate_predictions("synthetic", path)
    assert result.metrics["accuracy"] == 0.5 and result.counts == {"scored": 2, "skipped": 4}  # s0 once, s1
    assert [(s["source"], s["key"], s["reason"]) for s in result.skipped] == [
        (f"{path}:line 2", None, "invalid_json"), (f"{path}:line 3", None, "not_an_object"),
        (f"{path}:line 4", "s0", "duplicate_key"), (f"{path}:line 5", "s2", "missing_field"),
    ]  # fmt: skip


def test_repeated_keys_in_vqa_and_pope_count_once(eval_files):
    lines = (eval_files / "vqa_preds.jsonl").read_text().splitlines()
    (eval_files / "vqa_dup.jsonl").write_text("\n".join([*lines, lines[0].replace('"Yes"', '"no"')]) + "\n")
    vqa = evaluate_predictions("vqa", eval_files / "vqa_dup.jsonl", annotations=eval_files / "vqa_annotations.json")
    assert vqa.metrics["accuracy"] == pytest.approx(0.95) and vqa.counts["scored"] == 2
    assert [s["reason"] for s in vqa.skipped] == ["duplicate_key"]
    lines = (eval_files / "pope_preds.jsonl").read_text().splitlines()
    (eval_files / "pope_dup.jsonl").write_text("\n".join([*lines, lines[0], '{"question_id": 99, "prediction": "no"}']))
    pope = evaluate_predictions("pope", eval_files / "pope_dup.jsonl", questions_dir=eval_files / "pope")
    assert pope.metrics["mean/accuracy"] == pytest.approx(2 / 3) and pope.counts["scored"] == 6
    assert [s["reason"] for s in pope.skipped] == ["duplicate_key", "unknown_question"]


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_unreachable_judge_gives_no_metric_and_exits_3(eval_files, capsys):
    out = eval_files / "out"
    judge = ["video-qa", "--predictions", eval_files / "msvd_preds.jsonl", "--judge", "openai", "--judge-model", "j",
             "--base-url", f"http://127.0.0.1:{_closed_port()}/v1", "--max-retries", "1", "--base-delay", "0.01",
             "--questions", eval_files / "MSVD_Zero_Shot_QA/test_q.json",
             "--answers", eval_files / "MSVD_Zero_Shot_QA/test_a.json", "--out", out]  # fmt: skip
    for extra in ([], ["--allow-partial", "--overwrite"]):  # nothing judged: no metric even when partial is accepted
        assert lvlm_eval(*judge, *extra) == 3
        result = json.loads((out / "video-qa.json").read_text())
        assert result["status"] == "incomplete" and result["metrics"] == {}
        assert (result["counts"]["judged"], result["counts"]["questions"]) == (0, 3)
        assert result["rows"][0][3:] == ["0/3", 3, "-", "-"]
        assert not (out / "tensorboard").exists()  # no accuracy 0.0 in TensorBoard either
        assert "3 of 3 items could not be judged" in capsys.readouterr().err


def test_partial_result_only_when_accepted(eval_files, chat_server):
    out = eval_files / "out"
    judge = ["video-qa", "--predictions", eval_files / "msvd_preds.jsonl", "--judge", "openai", "--judge-model", "j",
             "--base-url", chat_server.base_url, "--max-retries", "0", "--workers", "1",
             "--questions", eval_files / "MSVD_Zero_Shot_QA/test_q.json",
             "--answers", eval_files / "MSVD_Zero_Shot_QA/test_a.json", "--out", out]  # fmt: skip
    chat_server.script.append(("status", 500, None))  # the first item fails, the others are judged (and cached)
    assert lvlm_eval(*judge) == 3
    assert json.loads((out / "video-qa.json").read_text())["metrics"] == {}
    chat_server.script.append(("status", 500, None))  # the failed item is asked again and fails again
    assert lvlm_eval(*judge, "--allow-partial", "--overwrite") == 0
    result = json.loads((out / "video-qa.json").read_text())
    # judged: two vs three -> no/1, red -> yes/4: accuracy 1/2 over the 2 judged of 3
    assert result["status"] == "partial" and result["metrics"] == {"accuracy": 0.5, "score": 2.5}
    assert result["rows"][0][3] == "2/3" and (out / "tensorboard" / "video-qa").is_dir()


def test_outputs_never_overwrite_inputs_or_earlier_results(eval_files, capsys):
    args = ["synthetic", "--predictions", eval_files / "synthetic_preds.jsonl"]
    (eval_files / "synthetic.json").write_text((eval_files / "synthetic_preds.jsonl").read_text())
    with pytest.raises(OutputError, match="synthetic.json is the input"):
        from lvlm.apps.eval import main

        main(["synthetic", "--predictions", str(eval_files / "synthetic.json"), "--out", str(eval_files)])
    assert lvlm_eval(*args, "--out", eval_files / "r") == 0
    (eval_files / "r" / "tensorboard" / "synthetic" / "stale").write_text("from an earlier run")
    assert lvlm_eval(*args, "--out", eval_files / "r") == 2
    assert "exists and is not empty: choose a new path or pass --overwrite" in capsys.readouterr().err
    assert lvlm_eval(*args, "--out", eval_files / "r", "--overwrite") == 0
    assert not (eval_files / "r" / "tensorboard" / "synthetic" / "stale").exists()  # replaced whole
    assert sorted(p.name for p in (eval_files / "r").iterdir()) == ["synthetic.json", "synthetic.md", "tensorboard"]
