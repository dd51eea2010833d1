"""``lvlm predict``: every prediction stays with its own key/question/answer, across processes too."""

from __future__ import annotations

import json

import pytest

from lvlm.apps.predict import main as predict_main
from lvlm.inference.batch_generate import GenerationSettings
from lvlm.inference.predict import answer, predict_records
from tests.inference.conftest import QUESTIONS

ANSWERED = ["q0", "q1", "q3", "q4", "q6", "q7"]


def read_jsonl(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.fixture(scope="module")
def one_process(checkpoint_dir, questions_file, tmp_path_factory):
    out = tmp_path_factory.mktemp("predict") / "predictions.jsonl"
    argv = ["--model", str(checkpoint_dir), "--questions", str(questions_file), "--out", str(out)]
    assert predict_main([*argv, "--batch-size", "3", "--max-new-tokens", "6"]) == 0
    return out


def test_records_keep_their_own_key_question_and_answer(one_process, session, media_dir):
    records = read_jsonl(one_process)
    assert [r["key"] for r in records] == ANSWERED  # input order, bad ones left out (never replaced)
    by_key = {q.get("id", q.get("key")): q for q in QUESTIONS}
    for record in records:
        source = by_key[record["key"]]
        if "question" in source:
            assert record["question"] == source["question"]
            assert record["answer"] == source["answer"]
        media = [media_dir / p for kind in ("video", "image") for p in _list(source.get(kind))]
        if "question" in source:  # the prediction is the answer to THIS question, asked alone
            assert record["prediction"] == answer(session, source["question"], media, GenerationSettings(6))
    q6 = records[ANSWERED.index("q6")]
    assert (q6["question"], q6["answer"]) == ("describe the video and the picture", "a square moves; a red square")
    assert records[0]["category"] == "colour" and records[0]["image"] == "red.png"  # metadata passes through


def _list(value):
    return [] if value is None else [value] if isinstance(value, str) else value


def test_bad_samples_are_skipped_and_reported(one_process, capsys):
    skipped = read_jsonl(one_process.with_name("predictions.skipped.jsonl"))
    assert [(s["key"], s["reason"]) for s in skipped] == [("q2", "missing_file"), ("q5", "undecodable_media")]
    assert "missing.mp4" in skipped[0]["detail"] and "broken.mp4" in skipped[1]["detail"]


def test_predict_records_hook_for_eval(session, media_dir):
    skipped = []
    records = predict_records(session, QUESTIONS[:3], media_root=media_dir, max_new_tokens=4, skipped=skipped)
    assert [r["key"] for r in records] == ["q0", "q1"]
    assert [s.key for s in skipped] == ["q2"]
    assert set(records[0]) >= {"key", "question", "answer", "prediction"}


def test_repeated_key_is_skipped_and_unusable_file_exits_2(checkpoint_dir, tmp_path, capsys):
    from lvlm.apps.cli import main as lvlm_main

    questions = tmp_path / "q.json"
    questions.write_text(json.dumps([{"id": "a", "question": "x"}, {"id": "a", "question": "y"}]))
    argv = ["--model", str(checkpoint_dir), "--questions", str(questions), "--max-new-tokens", "2"]
    assert predict_main([*argv, "--out", str(tmp_path / "o.jsonl"), "--no-progress"]) == 0
    assert [r["key"] for r in read_jsonl(tmp_path / "o.jsonl")] == ["a"]
    (skipped,) = read_jsonl(tmp_path / "o.skipped.jsonl")
    assert (skipped["key"], skipped["reason"], skipped["source"]) == ("a", "duplicate_key", f"{questions}:record 2")
    questions.write_text('[{"id": "a", "question": "x"},')  # a JSON list that does not parse: refused whole
    with pytest.raises(SystemExit) as done:
        lvlm_main(["predict", *argv, "--out", str(tmp_path / "p.jsonl")])
    assert done.value.code == 2
    err = capsys.readouterr().err
    assert f"lvlm predict: {questions}: not valid JSON (line 1" in err and "Traceback" not in err
    assert not (tmp_path / "p.jsonl").exists() and not (tmp_path / "p.jsonl.partial").exists()


def test_video_chatgpt_question_files_are_read_as_they_are(media_dir):
    from lvlm.inference.questions import question_from_record

    record = {"video_name": "right", "question": "where does it move?", "question_id": "v_7"}
    question = question_from_record(0, record, media_dir)
    assert (question.key, question.media) == ("v_7", [("video", str(media_dir / "right.mp4"))])
    assert question.conversations == [{"from": "human", "value": "<video>\nwhere does it move?"}]
    assert question.meta == {"video_name": "right", "question_id": "v_7", "video": "right.mp4"}
