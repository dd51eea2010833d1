"""``lvlm predict`` never writes over its inputs or an earlier result; ``--overwrite`` replaces a result whole."""

from __future__ import annotations

import json

from tests.apps.predict_helpers import lvlm_predict, read_jsonl


def test_output_that_is_or_lies_in_an_input_is_refused(checkpoint_dir, media_dir, tmp_path, capsys):
    questions = tmp_path / "q.json"
    questions.write_text(json.dumps([{"id": "a", "image": str(media_dir / "red.png"), "question": "what colour?"}]))
    before = questions.read_bytes()
    for out in (questions, checkpoint_dir / "p.jsonl", media_dir / "red.png"):
        argv = ["--model", checkpoint_dir, "--questions", questions, "--out", out, "--overwrite"]
        assert lvlm_predict(*argv) == 2
        err = capsys.readouterr().err
        assert err.startswith("lvlm predict: --out ") and "the input" in err and "Traceback" not in err
    assert questions.read_bytes() == before and not (checkpoint_dir / "p.jsonl").exists()
    assert not list(tmp_path.glob("*.partial")) and not list(checkpoint_dir.glob("p.*"))


def test_existing_output_needs_overwrite_and_is_replaced_whole(checkpoint_dir, media_dir, tmp_path, capsys):
    questions = tmp_path / "q.json"
    questions.write_text(json.dumps([{"id": "a", "image": str(media_dir / "red.png"), "question": "what colour?"}]))
    out = tmp_path / "p.jsonl"
    out.write_text("an earlier result\n")
    (tmp_path / "p.skipped.jsonl").write_text('{"key": "stale"}\n')
    argv = ["--model", checkpoint_dir, "--questions", questions, "--out", out]
    assert lvlm_predict(*argv) == 2
    assert "exists and is not empty: choose a new path or pass --overwrite" in capsys.readouterr().err
    assert out.read_text() == "an earlier result\n"
    capsys.readouterr()
    assert lvlm_predict(*argv, "--overwrite", progress=True) == 0
    assert [r["key"] for r in read_jsonl(out)] == ["a"]
    progress = capsys.readouterr().err
    assert "predict: 100%" in progress and "1/1" in progress  # the progress bar of the run
    assert (tmp_path / "p.skipped.jsonl").read_text() == ""  # the stale report does not survive beside the new one
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p.jsonl", "p.skipped.jsonl", "q.json"]
