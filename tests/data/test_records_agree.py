"""One file of records read by ``lvlm shards``, tokenization, ``lvlm predict`` and ``lvlm eval``: the same names,
the same questions, the same refusal."""

from __future__ import annotations

import json

import pytest
import webdataset as wds
from media_fixtures import make_media_dir
from tokenizer_fixtures import tiny_modalities, tiny_tokenizer

from lvlm.apps.shards import main as shards_main
from lvlm.data.records import load_records
from lvlm.data.sample_errors import SampleFormatError
from lvlm.data.templates import vicuna_v1
from lvlm.data.tokenization import parse_conversations, tokenize_prompt
from lvlm.eval.records import record_key
from lvlm.inference.predict import prediction_record
from lvlm.inference.question_files import questions_from_file
from lvlm.inference.question_shards import questions_from_shards
from lvlm.modalities import ImageModality, VideoModality


def turns(question: str, answer: str) -> list[dict[str, str]]:
    return [{"from": "human", "value": question}, {"from": "gpt", "value": answer}]


RECORDS = [
    {"question_id": 7, "key": "k7", "id": "i7", "image": "a.jpg", "conversations": turns("<image>\nColour?", "red")},
    {"key": "k8", "id": "i8", "conversations": turns("How many?", "two")},
    {"id": "i9", "image": ["a.jpg"], "conversations": turns("<image>\nWhat shape?", "a square")},
    {"id": "bad", "conversations": [{"from": "user", "value": "hi"}]},
]
NAMES = ["7", "k8", "i9"]
QUESTIONS = ["Colour?", "How many?", "What shape?"]
REFUSAL = "field 'conversations': turn 0 must be {'from': 'human'|'gpt', 'value': str}"


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    media = make_media_dir(tmp_path_factory.mktemp("agree") / "media")
    path = media / "records.json"
    path.write_text(json.dumps(RECORDS))
    out = media.parent / "shards"
    assert shards_main([str(path), "--image-folder", str(media / "images"), "--out", str(out)]) == 0
    return path, media, out


def test_shards_predict_and_eval_give_every_record_the_same_name(inputs):
    path, media, out = inputs
    modalities = (ImageModality(tower=None).bind("image"), VideoModality(tower=None).bind("video"))
    assert [r.key for r in load_records([path], modalities)] == [*NAMES, "bad"]
    from_file, _ = questions_from_file(path, media / "images")
    from_shards = list(questions_from_shards(str(out / "shard-000000.tar")))
    assert [q.key for q in from_file] == [*NAMES, "bad"] and [q.key for q in from_shards] == NAMES
    asked = [q for q in from_file if q.error is None]
    assert [q.question for q in asked] == [q.question for q in from_shards] == QUESTIONS
    assert [q.answer for q in asked] == [q.answer for q in from_shards] == ["red", "two", "a square"]
    for question in [*asked, *from_shards]:  # a prediction is read back for scoring under the same name
        assert record_key(prediction_record(question, "x")) == question.key


def test_tokenization_reads_the_shards_turns_as_predict_reads_the_file(inputs):
    _, _, out = inputs
    tokenizer, modalities = tiny_tokenizer(), tiny_modalities()
    samples = list(wds.WebDataset(str(out / "shard-000000.tar"), shardshuffle=False))
    assert [s["__key__"] for s in samples] == NAMES
    for sample, question in zip(samples, QUESTIONS):
        conversations = json.loads(sample["json"])["conversations"]
        assert parse_conversations(conversations, sample["__key__"])[0][1].endswith(question)
        prompt = tokenize_prompt(conversations, tokenizer, vicuna_v1, modalities, 2, 512, key=sample["__key__"])
        assert prompt.reference == conversations[-1]["value"]


def test_a_malformed_record_is_refused_with_the_same_words_everywhere(inputs):
    path, media, out = inputs
    report = [json.loads(line) for line in (out / "skipped.jsonl").read_text().splitlines()]
    assert [(r["key"], r["file"], r["index"], r["reason"]) for r in report] == [("bad", str(path), 3, "bad_json")]
    assert report[0]["detail"].startswith(REFUSAL)
    question = questions_from_file(path, media / "images")[0][3]
    assert (question.source, question.error.reason, question.error.field) == (
        f"{path}:record 4",
        "wrong_type",
        "conversations",
    )
    assert str(question.error).startswith(REFUSAL)
    with pytest.raises(SampleFormatError) as err:
        parse_conversations(RECORDS[3]["conversations"], "bad")
    assert err.value.key == "bad" and err.value.detail.startswith(REFUSAL)
