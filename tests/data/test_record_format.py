"""The record parser: every accepted shape of a LLaVA / Video-LLaVA record, and every refusal naming its field."""

from __future__ import annotations

import pickle

import pytest

from lvlm.core.text_files import InputFileError
from lvlm.data.record_format import (
    RecordError,
    conversation_turns,
    media_paths,
    question_text,
    question_turns,
    record_object,
    training_turns,
)

TURNS = [{"from": "human", "value": "<image>\nWhat?"}, {"from": "gpt", "value": "A cat."}]


@pytest.mark.parametrize(
    ("record", "paths"),
    [
        ({"image": "a.jpg"}, ["a.jpg"]),
        ({"image": ["a.jpg", "b.png"]}, ["a.jpg", "b.png"]),
        ({"image": []}, []),
        ({"image": None}, []),
        ({}, []),
    ],
)
def test_a_media_field_is_a_path_or_a_list_of_paths(record, paths):
    assert media_paths(record, "image") == paths


@pytest.mark.parametrize(
    ("record", "reason", "message"),
    [
        ({"video": 5}, "wrong_type", "field 'video': must be a path or a list of paths, got 5"),
        ({"video": ["a.mp4", None]}, "wrong_type", "field 'video': must be a path or a list of paths"),
        ({"video": " "}, "bad_path", "field 'video': path ' ': empty path"),
        ({"video": "a\x00.mp4"}, "bad_path", "field 'video': path 'a\\x00.mp4': contains a NUL byte"),
        ({"video": "x" * 300}, "bad_path", "has a name longer than 255 bytes"),
    ],
)
def test_an_unusable_media_field_is_refused_by_name(record, reason, message):
    with pytest.raises(RecordError) as err:
        media_paths(record, "video")
    assert (err.value.reason, err.value.field) == (reason, "video") and message in str(err.value)


def test_conversations_are_checked_turn_by_turn():
    assert conversation_turns([{**TURNS[0], "extra": 1}, TURNS[1]]) == TURNS
    for value, message in [
        ("what?", "field 'conversations': must be a non-empty list of turns, got 'what?'"),
        ([], "field 'conversations': must be a non-empty list of turns"),
        ([{"from": "user", "value": "hi"}], "field 'conversations': turn 0 must be {'from': 'human'|'gpt', 'value'"),
        ([TURNS[0], {"from": "gpt", "value": 3}], "field 'conversations': turn 1 must be"),
    ]:
        with pytest.raises(RecordError) as err:
            conversation_turns(value)
        assert str(err.value).startswith(message) and err.value.reason == "wrong_type"


def test_training_turns_drop_leading_answers_and_must_alternate():
    assert training_turns([{"from": "gpt", "value": "orphan"}, *TURNS]) == [
        ("human", TURNS[0]["value"]),
        ("gpt", "A cat."),
    ]
    with pytest.raises(RecordError, match="field 'conversations': has no human turn"):
        training_turns([{"from": "gpt", "value": "orphan"}])
    with pytest.raises(RecordError, match="turns must alternate human/gpt; turn 2"):
        training_turns([*TURNS, {"from": "gpt", "value": "again"}])


def test_a_question_needs_a_human_turn():
    assert question_turns(TURNS) == TURNS
    with pytest.raises(RecordError, match="field 'conversations': has no human turn to answer") as err:
        question_turns([TURNS[1]])
    assert err.value.reason == "missing_field"


@pytest.mark.parametrize(
    ("record", "found"),
    [
        ({"question": "What colour?"}, ("question", "What colour?")),
        ({"text": "Is there a person?"}, ("text", "Is there a person?")),  # POPE's files
        ({"question": "Q?", "text": "T?"}, ("question", "Q?")),
    ],
)
def test_the_question_is_question_else_text(record, found):
    assert question_text(record) == found


def test_a_missing_or_empty_question_is_refused_by_name():
    with pytest.raises(RecordError, match="field 'text': must be a non-empty string") as err:
        question_text({"text": "  "})
    assert (err.value.reason, err.value.field) == ("wrong_type", "text")
    with pytest.raises(
        RecordError, match=r"needs 'question' \(or 'text', or 'conversations'\); has \['image'\]"
    ) as err:
        question_text({"image": "a.jpg"})
    assert err.value.reason == "missing_field"


@pytest.mark.parametrize(
    ("value", "reason", "message"),
    [
        ([1, 2], "not_an_object", "a record must be a JSON object, got list"),
        ({"question_id": 1.5}, "wrong_type", "field 'question_id': must be a non-empty string or an integer"),
        ({"key": ""}, "wrong_type", "field 'key': must be a non-empty string or an integer"),
        ({"id": {"a": 1}}, "wrong_type", "field 'id': must be a non-empty string or an integer, got {'a': 1}"),
        ({"id": "lone\ud800"}, "wrong_type", "the record holds text that is not valid Unicode"),
    ],
)
def test_a_record_that_is_not_a_usable_object_is_refused(value, reason, message):
    with pytest.raises(RecordError) as err:
        record_object(value)
    assert err.value.reason == reason and message in str(err.value)


def test_a_located_error_names_the_file_the_record_its_id_and_the_field():
    err = RecordError("wrong_type", "must be a path or a list of paths, got 5", "image").at("q.jsonl:line 3", "q7")
    assert str(err) == "q.jsonl:line 3 (id 'q7'): field 'image': must be a path or a list of paths, got 5"
    assert isinstance(err, InputFileError)  # the one error type of a user's input file
    again = pickle.loads(pickle.dumps(err))  # crosses processes in multi-process prediction
    assert (str(again), again.reason, again.field) == (str(err), "wrong_type", "image")
