"""Prompt building: markers first then a newline (as the original), history, placeholder expansion."""

from __future__ import annotations

import pytest
import torch

from lvlm.data.sample_errors import MissingMediaError
from lvlm.inference.prompts import Conversation, prepare_prompt, question_conversation, with_markers
from lvlm.modalities.catalog import unbound_modality

IMAGE, VIDEO = unbound_modality("image"), unbound_modality("video")


def test_markers_first_videos_then_images():
    assert with_markers("What is it?", [IMAGE, VIDEO]) == "<video><image>\nWhat is it?"
    assert with_markers("What is it?", []) == "What is it?"
    assert with_markers("Look: <image> what?", [IMAGE]) == "Look: <image> what?"  # placed by the user


def test_media_attach_to_the_first_turn_only():
    chat = Conversation(modalities=[IMAGE])
    chat.record("what colour?", "red")
    turns = chat.ask("and the shape?")
    assert [t["value"] for t in turns] == ["<image>\nwhat colour?", "red", "and the shape?"]


def test_prompt_expands_placeholders_and_ends_with_assistant(session):
    image = torch.zeros(3, 28, 28)
    video = torch.ones(4, 3, 28, 28)
    sample = prepare_prompt(
        session, question_conversation("describe", [IMAGE, VIDEO]), [("image", image), ("video", video)]
    )
    ids = sample.input_ids.tolist()
    image_id, video_id = (session.tokenizer.convert_tokens_to_ids(t) for t in ("<image>", "<video>"))
    assert ids.count(image_id) == 4 and ids.count(video_id) == 4 * 5
    assert ids.index(video_id) < ids.index(image_id)  # video block first
    text = session.tokenizer.decode(ids)
    assert text.startswith("<s>") and text.rstrip().endswith("ASSISTANT:")
    assert session.template.system in text
    assert [key for key, _ in sample.media] == ["videos", "images"]
    assert sample.modality == "video+image"


def test_marker_without_media_is_an_error(session):
    with pytest.raises(MissingMediaError, match="1 image marker"):
        prepare_prompt(session, question_conversation("what?", [IMAGE]), [])
