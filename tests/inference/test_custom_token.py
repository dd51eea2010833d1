"""A modality with its own placeholder (``token: "<thermal_img>"``) is written, tokenized and asked with it."""

from __future__ import annotations

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
