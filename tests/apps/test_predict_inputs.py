"""``lvlm predict`` over malformed inputs: every bad item is skipped, counted and listed; the run finishes."""

from __future__ import annotations

import io
import json

import pytest
import webdataset as wds
from PIL import Image

from lvlm.apps.command import parse_command
from lvlm.apps.predict import Predict, job_from_args
from lvlm.inference.predict_run import check_inputs
from tests.apps.cli_runner import lvlm
from tests.apps.predict_helpers import lvlm_predict, read_jsonl

LINES = [
    '{"id": "ok1", "image": "red.png", "question": "what colour is the shape?", "answer": "red"}',
    '{"id": "noq", "image": "red.png", "answer": "x"}',
    "[1, 2]",
    '{"id": "broken',
    '{"id": "badtype", "image": 5, "question": "what?"}',
    '{"id": "noturn", "conversations": [{"from": "gpt", "value": "x"}]}',
    '{"id": "emptyq", "question": ""}',
    '{"id": "gone", "video": "missing.mp4", "question": "where does it move?"}',
    '{"question_id": 3, "image": "blue.jpg", "text": "Is there a blue shape in the image?", "label": "yes"}',
    '{"id": "ok1", "question": "a second ok1"}',
    '"just a string"',
    '{"id": {"a": 1}, "question": "what?"}',
    '{"id": "undecodable", "video": "broken.mp4", "question": "what?"}',
]
EXPECTED_SKIPPED = [
    ("noq", "missing_field", 2), ("2", "not_an_object", 3), ("3", "invalid_json", 4), ("badtype", "wrong_type", 5),
    ("noturn", "missing_field", 6), ("emptyq", "wrong_type", 7), ("gone", "missing_file", 8),
    ("ok1", "duplicate_key", 10), ("10", "not_an_object", 11), ("11", "wrong_type", 12),
    ("undecodable", "undecodable_media", 13),
]  # fmt: skip


def test_jsonl_with_bad_lines_finishes_and_lists_each(checkpoint_dir, media_dir, tmp_path, capsys):
    questions = tmp_path / "questions.jsonl"
    questions.write_text("\n".join(LINES) + "\n")
    out = tmp_path / "out.jsonl"
    argv = ["--model", checkpoint_dir, "--questions", questions, "--media-root", media_dir, "--out", out]
    assert lvlm_predict(*argv) == 0
    records = read_jsonl(out)
    assert [r["key"] for r in records] == ["ok1", "3"]
    # POPE's own record: text is the question, question_id and label pass through for `lvlm eval pope`
    assert records[1]["question"] == "Is there a blue shape in the image?"
    assert (records[1]["question_id"], records[1]["label"], records[1]["image"]) == (3, "yes", "blue.jpg")
    skipped = read_jsonl(tmp_path / "out.skipped.jsonl")
    assert [(s["key"], s["reason"], s["source"]) for s in skipped] == [
        (key, reason, f"{questions}:line {line}") for key, reason, line in EXPECTED_SKIPPED
    ]
    assert "needs 'question'" in skipped[0]["detail"] and "missing.mp4" in skipped[6]["detail"]
    assert "wrote 2 predictions" in capsys.readouterr().out


def test_every_record_is_checked_before_any_model_loads(media_dir, tmp_path, capsys):
    questions = tmp_path / "questions.jsonl"
    questions.write_text("\n".join(LINES) + "\n")
    args = parse_command(
        Predict,
        ["--model", str(tmp_path / "no-model-needed"), "--questions", str(questions), "--out", str(tmp_path / "o")],
    )
    keys = check_inputs(job_from_args(args), overwrite=False)  # reads and checks; loads no model, writes nothing
    assert len(keys) == len(LINES) and keys[8] == "3"
    err = capsys.readouterr().err
    assert f"9 of {len(LINES)} questions cannot be asked" in err  # the 9 record errors; media are checked later
    assert f"{questions}:line 2 (key noq): missing_field" in err
    assert not list(tmp_path.glob("o*"))


def test_question_file_in_latin1_is_read_and_reported(checkpoint_dir, media_dir, tmp_path, capsys):
    questions = tmp_path / "q.json"
    questions.write_bytes('[{"id": "é1", "image": "red.png", "question": "what colour, café?"}]'.encode("latin-1"))
    out = tmp_path / "o.jsonl"
    assert (
        lvlm_predict("--model", checkpoint_dir, "--questions", questions, "--media-root", media_dir, "--out", out) == 0
    )
    (record,) = read_jsonl(out)
    assert (record["key"], record["question"]) == ("é1", "what colour, café?")


def _png() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (28, 28), (200, 20, 20)).save(buf, format="PNG")
    return buf.getvalue()


def _turns(question: str) -> bytes:
    return json.dumps({"conversations": [{"from": "human", "value": question}]}).encode()


def test_bad_shard_samples_and_a_truncated_tar_are_skipped(checkpoint_dir, tmp_path):
    png = _png()
    with wds.TarWriter(str(tmp_path / "a.tar")) as tar:
        tar.write({"__key__": "s0", "png": png, "json": _turns("<image>\nwhat colour?")})
        tar.write({"__key__": "e1", "json": b""})
        tar.write({"__key__": "n2", "json": b"[1]"})
        tar.write({"__key__": "j3", "png": png})
        tar.write({"__key__": "m4", "png": b"not an image", "json": _turns("<image>\nwhat?")})
        tar.write({"__key__": "u5", "xyz": b"1", "json": _turns("what?")})
        tar.write({"__key__": "w6", "json": json.dumps({"conversations": "what?"}).encode()})
        tar.write({"__key__": "s0", "json": _turns("again?")})
    with wds.TarWriter(str(tmp_path / "b.tar")) as tar:
        tar.write({"__key__": "t0", "json": _turns("how many?")})
        tar.write({"__key__": "t1", "png": png * 20, "json": _turns("<image>\nwhat?")})
    whole = (tmp_path / "b.tar").read_bytes()
    (tmp_path / "b.tar").write_bytes(whole[:3000])  # cut inside t1
    out = tmp_path / "o.jsonl"
    a, b = str(tmp_path / "a.tar"), str(tmp_path / "b.tar")
    assert lvlm_predict("--model", checkpoint_dir, "--shards", a, b, "--out", out) == 0
    assert [r["key"] for r in read_jsonl(out)] == ["s0", "t0"]
    skipped = read_jsonl(tmp_path / "o.skipped.jsonl")
    assert [(s["key"], s["reason"], s["source"]) for s in skipped] == [
        ("e1", "invalid_json", a), ("n2", "not_an_object", a), ("j3", "missing_field", a),
        ("m4", "undecodable_media", a), ("u5", "bad_json", a), ("w6", "wrong_type", a), ("s0", "duplicate_key", a),
        ("?", "unreadable_shard", b),
    ]  # fmt: skip


def test_unusable_inputs_are_refused_before_any_work(checkpoint_dir, tmp_path, capsys):
    empty, scalar = tmp_path / "empty.json", tmp_path / "scalar.jsonl"
    empty.write_text("[]")
    scalar.write_text("3\n")
    cases = [
        (["--questions", empty], f"{empty}: the question list is empty"),
        (["--questions", scalar], f"{scalar}: neither a JSON list nor JSONL of objects ({scalar}:line 1: not an "),
        (["--questions", tmp_path / "absent.json"], f"{tmp_path / 'absent.json'}: file not found"),
        (["--shards", tmp_path / "none-*.tar"], "--shards: data source pattern"),
    ]
    for argv, message in cases:
        assert lvlm_predict("--model", checkpoint_dir, *argv, "--out", tmp_path / "o.jsonl") == 2
        err = capsys.readouterr().err
        assert err.startswith("lvlm predict: ") and message in err and "Traceback" not in err
    assert lvlm_predict("--model", tmp_path / "no-model", "--questions", empty, "--out", tmp_path / "o.jsonl") == 2
    assert "--model" in capsys.readouterr().err and not list(tmp_path.glob("o.*"))


@pytest.fixture(scope="module")
def image_only_checkpoint(tmp_path_factory):
    """A tiny model with an image tower only."""
    from lvlm.models.video_llava import VideoLLaVA
    from tests.inference.tiny_checkpoint import build_tiny_model

    model, tok = build_tiny_model(max_positions=160)
    image_only = VideoLLaVA.build(model.llm, {"image": model.towers["image"]}, tokenizer=tok, chat_template="vicuna_v1")
    directory = tmp_path_factory.mktemp("image_only") / "ckpt"
    image_only.save_pretrained(directory, tokenizer=tok)
    return directory


@pytest.mark.parametrize("processes", ["1", "2"])
@pytest.mark.parametrize("kind", ["video", "image"])
def test_questions_naming_media_the_model_lacks_are_refused_before_any_answer(
    image_only_checkpoint, media_dir, tmp_path, capsys, kind, processes
):
    """The image question is the benign twin: the same model answers it (one process, or two spawned ones)."""
    questions = tmp_path / "q.jsonl"
    media = {"video": "right.mp4", "image": "red.png"}[kind]
    questions.write_text(json.dumps({"key": "q1", kind: media, "question": "what is it?"}) + "\n")
    out = tmp_path / "preds.jsonl"
    argv = ["predict", "--model", image_only_checkpoint, "--questions", questions, "--media-root", media_dir]
    code, printed = lvlm(
        capsys, *argv, "--out", out, "--max-new-tokens", "2", "--no-progress", "--num-processes", processes
    )
    if kind == "image":
        assert code == 0 and len(out.read_text().splitlines()) == 1, printed
        return
    assert code == 2 and not out.exists() and "Traceback" not in printed
    assert printed.strip().splitlines()[-1] == (
        f"lvlm predict: 1 question(s) name 'video' media (the first: {questions}:line 1, key q1) but the model "
        f"{image_only_checkpoint} has no 'video' modality; it takes image"
    )
