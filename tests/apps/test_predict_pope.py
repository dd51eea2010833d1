"""POPE's own question files go through ``lvlm predict`` as they are, and the output through ``lvlm eval pope``."""

from __future__ import annotations

import json

import pytest

from lvlm.apps.cli import main as lvlm_main
from lvlm.eval.pope import parse_pope_answer
from tests.apps.predict_helpers import lvlm_predict, read_jsonl

POPE = [
    {"question_id": 1, "image": "red.png", "text": "Is there a red square in the image?", "label": "yes"},
    {"question_id": 2, "image": "blue.jpg", "text": "Is there a dog in the image?", "label": "no"},
]


def test_pope_jsonl_predicted_then_scored(checkpoint_dir, media_dir, tmp_path):
    pope = tmp_path / "pope"
    pope.mkdir()
    (pope / "coco_pope_random.json").write_text("".join(json.dumps(q) + "\n" for q in POPE))  # JSONL, as released
    out = tmp_path / "pope_preds.jsonl"
    argv = ["--questions", pope / "coco_pope_random.json", "--media-root", media_dir, "--out", out]
    assert lvlm_predict("--model", checkpoint_dir, *argv) == 0
    predictions = read_jsonl(out)
    assert [(p["key"], p["question_id"], p["question"]) for p in predictions] == [
        ("1", 1, POPE[0]["text"]), ("2", 2, POPE[1]["text"])
    ]  # fmt: skip
    with pytest.raises(SystemExit) as done:
        lvlm_main(
            ["eval", "pope", "--predictions", str(out), "--questions-dir", str(pope), "--out", str(tmp_path / "r")]
        )
    assert done.value.code == 0
    result = json.loads((tmp_path / "r" / "pope.json").read_text())
    parsed = [parse_pope_answer(p["prediction"]) for p in predictions]
    assert [item["parsed"] for item in result["items"]] == parsed and result["counts"]["scored"] == 2
    assert result["metrics"]["random/accuracy"] == sum(p == q["label"] for p, q in zip(parsed, POPE)) / 2
