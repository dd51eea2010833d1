"""`lvlm eval PROTOCOL --model DIR`: predictions are generated first, then scored."""

from __future__ import annotations

import json

import pytest

from lvlm.apps.cli import main as lvlm
from lvlm.apps.eval import main
from lvlm.inference.predict_output import PartWriter
from tests.inference.tiny_checkpoint import save_tiny_checkpoint, write_image, write_mp4


def test_eval_generates_then_scores(tmp_path):
    model_dir = save_tiny_checkpoint(tmp_path / "model", max_positions=160)
    media = tmp_path / "media"
    media.mkdir()
    write_image(media / "red.png", (220, 20, 20))
    write_mp4(media / "right.mp4", seed=0)
    questions = [
        {"id": "a", "image": "red.png", "question": "what colour is the shape?", "answer": "red"},
        {"id": "b", "video": "right.mp4", "question": "where does it move?", "answer": "right"},
        {"id": "c", "video": "gone.mp4", "question": "where does it move?", "answer": "left"},
    ]
    (media / "q.json").write_text(json.dumps(questions))
    out = tmp_path / "out"
    argv = ["video-qa", "--model", str(model_dir), "--questions-json", str(media / "q.json"), "--out", str(out)]
    assert main(argv + ["--max-new-tokens", "4", "--allow-missing", "--no-tensorboard"]) == 0
    predictions = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
    assert [(p["key"], p["answer"]) for p in predictions] == [("a", "red"), ("b", "right")]
    skipped = [json.loads(line) for line in (out / "predictions.skipped.jsonl").read_text().splitlines()]
    assert [(s["key"], s["reason"]) for s in skipped] == [("c", "missing_file")]
    result = json.loads((out / "video-qa.json").read_text())
    assert result["counts"]["judged"] == 2


def test_interrupted_predictions_resume_and_score_as_an_uninterrupted_run(tmp_path, monkeypatch, capsys):
    model_dir = save_tiny_checkpoint(tmp_path / "model", max_positions=160)
    media = tmp_path / "media"
    media.mkdir()
    write_image(media / "red.png", (220, 20, 20))
    questions = [
        {"id": f"q{i}", "image": "red.png", "question": f"what colour is shape {i}?", "answer": "red"} for i in range(6)
    ]
    (media / "q.json").write_text(json.dumps(questions))

    def argv(out):
        return ["video-qa", "--model", str(model_dir), "--questions-json", str(media / "q.json"), "--out", str(out)] + [
            "--max-new-tokens", "3", "--batch-size", "2", "--allow-missing", "--no-tensorboard",
        ]  # fmt: skip

    assert main(argv(tmp_path / "full")) == 0
    written = PartWriter.write

    def write_then_stop(self, batch):  # the run stops after two batches are on disk
        written(self, batch)
        if len(self.path.read_text().splitlines()) >= 4:
            raise KeyboardInterrupt

    monkeypatch.setattr(PartWriter, "write", write_then_stop)
    with pytest.raises(KeyboardInterrupt):
        main(argv(tmp_path / "cut"))
    monkeypatch.setattr(PartWriter, "write", written)
    assert (tmp_path / "cut" / "predictions.jsonl.partial").is_dir()
    assert not (tmp_path / "cut" / "predictions.jsonl").exists()
    with pytest.raises(SystemExit) as refused:  # a partial run is never silently restarted
        lvlm(["eval", *argv(tmp_path / "cut")])
    assert refused.value.code == 2 and "--resume" in capsys.readouterr().err
    capsys.readouterr()
    assert main(argv(tmp_path / "cut") + ["--resume"]) == 0
    assert "resuming: 4 of 6 questions already done" in capsys.readouterr().err
    assert (tmp_path / "cut" / "predictions.jsonl").read_text() == (tmp_path / "full" / "predictions.jsonl").read_text()
    scored = [
        (tmp_path / run / "video-qa.json").read_text().replace(str(tmp_path / run), "OUT") for run in ("cut", "full")
    ]
    assert scored[0] == scored[1]
