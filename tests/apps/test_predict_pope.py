"""POPE's own question files go through ``lvlm predict`` as they are, and the output through ``lvlm eval pope``."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

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


def installed_lvlm(*argv, cwd) -> subprocess.CompletedProcess:
    """The installed ``lvlm`` console script, as a user runs it."""
    command = [shutil.which("lvlm") or str(Path(sys.executable).parent / "lvlm"), *map(str, argv)]
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=300)


def test_official_pope_files_through_the_installed_command_record_the_split(checkpoint_dir, media_dir, tmp_path):
    """Two splits of POPE's files (ids repeat across them, as in the released files) predicted into one file."""
    pope = tmp_path / "pope"
    pope.mkdir()
    labels = {"random": ["yes", "no"], "adversarial": ["no", "yes"]}
    for split, (first, second) in labels.items():
        rows = [{**POPE[0], "label": first}, {**POPE[1], "label": second}]
        (pope / f"coco_pope_{split}.json").write_text("".join(json.dumps(q) + "\n" for q in rows))
    lines = []
    for split in labels:
        out = tmp_path / f"{split}.jsonl"
        done = installed_lvlm("predict", "--model", checkpoint_dir, "--questions", pope / f"coco_pope_{split}.json",
                              "--media-root", media_dir, "--out", out, "--max-new-tokens", "3", "--no-progress",
                              cwd=tmp_path)  # fmt: skip
        assert done.returncode == 0, done.stderr
        predictions = read_jsonl(out)
        assert [(p["question_id"], p["category"]) for p in predictions] == [(1, split), (2, split)]
        lines += out.read_text().splitlines()
    (tmp_path / "both.jsonl").write_text("\n".join(lines) + "\n")
    scored = installed_lvlm("eval", "pope", "--predictions", "both.jsonl", "--questions-dir", "pope", "--out", "r",
                            cwd=tmp_path)  # fmt: skip
    assert scored.returncode == 0, scored.stderr
    result = json.loads((tmp_path / "r" / "pope.json").read_text())
    assert [(it["category"], it["question_id"]) for it in result["items"]] == [
        ("adversarial", 1), ("adversarial", 2), ("random", 1), ("random", 2)
    ]  # fmt: skip
    assert result["counts"] == {"scored": 4, "missing": 0, "skipped": 0}  # no id taken for another split's


def test_a_split_without_predictions_names_the_allow_missing_flag(checkpoint_dir, media_dir, tmp_path):
    pope = tmp_path / "pope"
    pope.mkdir()
    for split in ("random", "popular"):
        (pope / f"coco_pope_{split}.json").write_text("".join(json.dumps(q) + "\n" for q in POPE))
    out = tmp_path / "random.jsonl"
    done = installed_lvlm("predict", "--model", checkpoint_dir, "--questions", pope / "coco_pope_random.json",
                          "--media-root", media_dir, "--out", out, "--max-new-tokens", "3", "--no-progress",
                          cwd=tmp_path)  # fmt: skip
    assert done.returncode == 0, done.stderr
    args = ["eval", "pope", "--predictions", out, "--questions-dir", pope, "--out", tmp_path / "r"]
    refused = installed_lvlm(*args, cwd=tmp_path)
    assert refused.returncode == 2 and "Traceback" not in refused.stderr
    assert f"2 of 2 questions in {pope / 'coco_pope_popular.json'} have no prediction" in refused.stderr
    assert "pass --allow-missing to score the answered ones only" in refused.stderr
    allowed = installed_lvlm(*args, "--allow-missing", cwd=tmp_path)  # the benign twin
    assert allowed.returncode == 0, allowed.stderr
    result = json.loads((tmp_path / "r" / "pope.json").read_text())
    assert result["counts"]["missing"] == 2 and {it["category"] for it in result["items"]} == {"random"}
