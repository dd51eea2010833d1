"""How a model saw media in training: recorded per modality, and applied by the one reader every entry point uses."""

from __future__ import annotations

import logging

import pytest

from lvlm.inference.session import load_session
from lvlm.modalities.media_record import (
    SEEN,
    apply_media_record,
    media_seen,
    recorded_seen,
    with_seen,
)
from lvlm.modalities.saved import saved_modalities
from tests.inference.tiny_checkpoint import build_tiny_model, save_tiny_checkpoint


@pytest.fixture
def model():
    return build_tiny_model()[0]


def test_the_record_holds_frames_for_video_and_preprocessing_for_every_modality(model):
    modalities = saved_modalities(model, "m")
    seen = media_seen(modalities, num_frames=5)
    assert seen["video"]["num_frames"] == 5 and "num_frames" not in seen["image"]
    assert seen["image"]["preprocessing"]["size"] == modalities["image"].tower_facts.preprocessing.size
    specs = with_seen({"image": {"class_path": "x"}, "video": {"class_path": "y"}}, seen)
    assert recorded_seen(specs) == seen and specs["image"][SEEN] == seen["image"]


def test_recorded_frames_and_preprocessing_are_applied_and_overrides_warned_once(model, caplog):
    modalities = saved_modalities(model, "m")
    seen = media_seen(modalities, num_frames=5)
    seen["image"]["preprocessing"]["mean"] = [0.5, 0.5, 0.5]  # what the data side used wins over the tower's
    assert apply_media_record(modalities, seen) == 5
    assert modalities["image"].tower_facts.preprocessing.mean == (0.5, 0.5, 0.5)
    with caplog.at_level(logging.WARNING):
        for _ in range(3):
            assert apply_media_record(saved_modalities(model, "m"), seen, num_frames=7, where="w") == 7
            apply_media_record(saved_modalities(model, "m"), seen, image_mode="crop", where="w")
    messages = [r.getMessage() for r in caplog.records]
    assert messages == [
        "w: num_frames 7 overrides the 5 the model was trained with",
        "w: image image_mode 'crop' overrides the 'pad' the model was trained with",
    ]
    unrecorded = saved_modalities(model, "m")  # nothing recorded: the video tower's own count
    assert apply_media_record(unrecorded, {}, fallback_frames=6) == unrecorded["video"].tower_facts.num_frames == 4


def test_a_saved_model_answers_with_its_recorded_frames_in_every_command(tmp_path):
    model_dir = save_tiny_checkpoint(tmp_path / "model")
    session = load_session(model_dir)
    default, model = session.num_frames, session.model
    specs = {name: modality.to_spec() for name, modality in session.modalities.items()}
    model.modality_specs = with_seen(specs, {"video": {"num_frames": default + 2}})
    model.save_pretrained(tmp_path / "recorded", tokenizer=session.tokenizer)
    assert load_session(tmp_path / "recorded").num_frames == default + 2


@pytest.mark.parametrize("command", ["chat", "predict", "serve"])
def test_no_command_forces_frames_or_image_mode_by_default(command):
    from importlib import import_module

    from lvlm.apps.command import parse_command

    module = import_module(f"lvlm.apps.{command}")
    required = ["--questions", "q", "--out", "o"] if command == "predict" else []
    defaults = parse_command(getattr(module, command.capitalize()), ["--model", "m", *required])
    assert defaults.num_frames is None and defaults.image_mode is None
