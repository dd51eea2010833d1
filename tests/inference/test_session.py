"""Loading a checkpoint for inference: template from the checkpoint, modalities and frames from the towers."""

from __future__ import annotations

import json
import logging

import pytest

from lvlm.inference.session import TemplateNotRecordedError, load_session


def test_template_frames_and_modalities_come_from_the_checkpoint(session):
    assert session.template.name == "vicuna_v1"
    assert session.num_frames == 4  # LanguageBindVideoTower(num_frames=4)
    image, video = session.modalities["image"], session.modalities["video"]
    assert (image.num_tokens(4), type(image).__name__, image.input_name) == (4, "ImageModality", "images")
    assert (video.num_tokens(4), type(video).__name__, video.uses_frames) == (20, "VideoModality", True)
    assert image.tower_facts.preprocessing.size == 28 and image.image_mode == "pad"
    assert session.max_length == 160
    assert not session.transform("video").augment


def test_checkpoint_without_a_template_asks_for_one(tmp_path, checkpoint_dir):
    target = tmp_path / "no-template"
    target.mkdir()
    for path in checkpoint_dir.iterdir():
        (target / path.name).write_bytes(path.read_bytes())
    config = json.loads((target / "lvlm_config.json").read_text())
    del config["chat_template"]
    (target / "lvlm_config.json").write_text(json.dumps(config))
    with pytest.raises(TemplateNotRecordedError, match="--template"):
        load_session(target)
    assert load_session(target, template="llava_v1").template.name == "llava_v1"


def test_explicit_template_overrides_with_a_warning(checkpoint_dir, caplog):
    with caplog.at_level(logging.WARNING, logger="lvlm.inference.session"):
        session = load_session(checkpoint_dir, template="llava_v1", num_frames=6)
    assert session.template.name == "llava_v1" and session.num_frames == 6
    assert "overrides 'vicuna_v1'" in caplog.text


def test_missing_directory(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such checkpoint"):
        load_session(tmp_path / "nowhere")


def test_transformers_layout_records_llava_v1_and_frames_from_video_seq_length(tmp_path):
    from tests.inference.tiny_checkpoint import build_tiny_model

    model, tok = build_tiny_model(temporal_attention=False)
    model.save_pretrained(tmp_path, layout="hf", tokenizer=tok)
    session = load_session(tmp_path)
    assert session.template.name == "llava_v1"  # the original's video-QA and demo template
    assert session.num_frames == 4  # video_seq_length 20 / 5 tokens per frame
