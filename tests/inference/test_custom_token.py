"""A modality with its own placeholder (``token: "<thermal_img>"``) is written, tokenized and asked with it."""

from __future__ import annotations

import json

import pytest
from PIL import Image

from lvlm.data.templates import get_template
from lvlm.inference.predict import predict_records
from lvlm.inference.prompts import prepare_prompt, question_conversation
from lvlm.inference.questions import questions_from_records
from lvlm.inference.serve_parts import PartTypes
from lvlm.inference.serve_requests import ServeLimits, parse_request
from lvlm.inference.session import InferenceSession
from lvlm.modalities import ImageModality
from lvlm.modalities.saved import saved_modalities
from tests.apps.cli_runner import lvlm
from tests.inference.tiny_checkpoint import build_tiny_model

TOKEN = "<thermal_img>"


@pytest.fixture(scope="module")
def session():
    model, tok = build_tiny_model(modalities={"image": ImageModality(tower=None, token=TOKEN, image_mode="pad")})
    modalities = saved_modalities(model, "tiny")
    modalities["image"].use_tower_facts(model.towers["image"])
    return InferenceSession(model, tok, get_template("vicuna_v1"), modalities, num_frames=4, max_length=512)


def test_prompts_write_and_tokenize_the_modality_token(session):
    image = session.modality("image")
    assert image.token == TOKEN and image.token_id == session.tokenizer.convert_tokens_to_ids(TOKEN)
    conversation = question_conversation("what colour?", [image])
    assert conversation[0]["value"] == f"{TOKEN}\nwhat colour?"
    sample = prepare_prompt(session, conversation, [("image", session.load("image", Image.new("RGB", (28, 28))))])
    assert sample.input_ids.tolist().count(image.token_id) == 4 and [k for k, _ in sample.media] == ["images"]


def test_questions_are_loaded_with_the_model_token_and_answered(session, tmp_path):
    path = tmp_path / "red.png"
    Image.new("RGB", (28, 28), "red").save(path)
    record = {"key": "q", "image": str(path), "question": "what colour?"}
    (question,) = questions_from_records([record], modalities=session.modalities)
    assert question.conversations[0]["value"] == f"{TOKEN}\nwhat colour?" and question.question == "what colour?"
    turns = {"key": "c", "image": str(path), "conversations": [{"from": "human", "value": f"{TOKEN}\nwhat?"}]}
    assert next(questions_from_records([turns], modalities=session.modalities)).question == "what?"
    skipped = []
    (prediction,) = predict_records(session, [record], max_new_tokens=2, skipped=skipped)
    assert skipped == [] and prediction["key"] == "q" and isinstance(prediction["prediction"], str)


def test_served_requests_are_marked_with_the_model_token(session):
    """`lvlm serve` writes the served model's placeholder, not the default `<image>`."""
    limits = ServeLimits(max_tokens=8)
    content = [
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
        {"type": "text", "text": "hi"},
    ]
    payload = {"model": "m", "messages": [{"role": "user", "content": content}]}
    job = parse_request(payload, limits, PartTypes.of(session.modalities))
    assert job.turns[-1]["value"] == f"{TOKEN}\nhi" and [ref.modality for ref in job.media] == ["image"]
    assert parse_request(payload, limits).turns[-1]["value"] == "<image>\nhi"  # no model given: the default


def test_lvlm_predict_asks_a_saved_custom_token_model(tmp_path, capsys):
    """The real command on a saved model whose image placeholder is its own: questions from a file and from shards
    are marked with that token (the default `<image>` is not in its vocabulary: every question would be skipped)."""
    model, tok = build_tiny_model(modalities={"image": ImageModality(tower=None, token=TOKEN, image_mode="pad")})
    model.save_pretrained(tmp_path / "model", tokenizer=tok)
    Image.new("RGB", (28, 28), "red").save(tmp_path / "red.png")
    records = [{"key": f"q{i}", "image": "red.png", "question": "what colour?"} for i in range(2)]
    (tmp_path / "questions.json").write_text(json.dumps(records))
    out = tmp_path / "predictions.jsonl"
    argv = ["predict", "--model", tmp_path / "model", "--questions", tmp_path / "questions.json", "--out", out]
    code, printed = lvlm(capsys, *argv, "--max-new-tokens", "2", "--no-progress")
    assert code == 0, printed
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert [line["key"] for line in lines] == ["q0", "q1"] and "skipped 0" in printed
