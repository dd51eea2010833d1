"""`lvlm eval PROTOCOL --model DIR`: predictions are generated first, then scored."""

from __future__ import annotations

import json

from lvlm.apps.eval import main
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
