"""lmms-eval requests → lvlm prompts, without lmms-eval: visuals, generation settings, stop strings."""

from __future__ import annotations

import pytest
import torch
from PIL import Image

from lvlm.apps.lmms.requests import (
    UnsupportedVisualError,
    flatten_visuals,
    generation_prompt,
    generation_settings,
    load_visuals,
    scoring_prompt,
    stop_strings,
)
from lvlm.inference.batch_generate import GenerationSettings
from lvlm.inference.media_files import MissingMediaFileError
from lvlm.inference.session import load_session
from tests.inference.tiny_checkpoint import save_tiny_checkpoint, write_image, write_mp4


@pytest.fixture(scope="module")
def session(tmp_path_factory):
    return load_session(save_tiny_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny"), num_frames=3)


@pytest.fixture(scope="module")
def media(tmp_path_factory):
    root = tmp_path_factory.mktemp("media")
    return write_image(root / "red.png"), write_mp4(root / "a.mp4"), write_mp4(root / "b.mp4", seed=1)


def test_visuals_of_every_kind_and_count(session, media):
    image_path, video_a, video_b = media
    with Image.open(image_path) as image:
        visuals = flatten_visuals([[image.convert("RGB")], None, str(video_a), [video_b, str(image_path)]])
        loaded = load_visuals(session, visuals, "t/0")
    assert [kind for kind, _ in loaded] == ["image", "video", "video", "image"]
    assert loaded[1][1].shape == (3, 3, 28, 28)  # num_frames=3 from the session, whatever the tower's default
    assert torch.equal(loaded[0][1], loaded[3][1])  # a PIL image and its file give the same pixels
    sample = generation_prompt(session, "compare them", loaded, "t/0")
    assert sample.modality == "video+image"
    assert [key for key, _ in sample.media] == ["videos", "videos", "images", "images"]
    assert sample.media[0][1] is loaded[1][1] and sample.media[1][1] is loaded[2][1]  # order kept within a kind


def test_bad_visuals_are_named(session, media, tmp_path):
    with pytest.raises(UnsupportedVisualError, match="t/1: lvlm takes PIL images.*dict"):
        load_visuals(session, [{"array": [0.0], "sampling_rate": 16000}], "t/1")
    with pytest.raises(MissingMediaFileError, match="nope.mp4"):
        load_visuals(session, [str(tmp_path / "nope.mp4")], "t/2")


def test_the_continuation_is_the_answer_after_the_templates_own_space(session):
    spaced = scoring_prompt(session, "what colour?", " red", [], "c/0")
    bare = scoring_prompt(session, "what colour?", "red", [], "c/0")
    assert torch.equal(spaced.input_ids, bare.input_ids) and torch.equal(spaced.labels, bare.labels)
    scored = spaced.input_ids[spaced.labels != -100].tolist()
    assert scored == session.tokenizer(" red", add_special_tokens=False)["input_ids"]


def test_generation_settings_from_gen_kwargs():
    assert generation_settings({}, 64) == GenerationSettings(max_new_tokens=64)
    greedy = {"max_new_tokens": 16, "temperature": 0, "top_p": None, "num_beams": 1, "do_sample": False}
    assert generation_settings(greedy, 64) == GenerationSettings(max_new_tokens=16)
    assert generation_settings({"temperature": 0.7, "do_sample": False}, 8).temperature == 0.0
    sampled = generation_settings({"temperature": 0.7, "top_p": 0.9, "do_sample": True}, 8)
    assert (sampled.temperature, sampled.top_p) == (0.7, 0.9)
    with pytest.raises(ValueError, match="num_beams=4"):
        generation_settings({"num_beams": 4}, 8)


def test_stop_strings_reach_the_engines_settings():
    assert stop_strings({"until": "\n\n"}) == ["\n\n"]
    assert stop_strings({"until": ["ASSISTANT:", "", "USER:"]}) == ["ASSISTANT:", "USER:"]
    assert stop_strings({}) == []
    assert generation_settings({"until": ["USER:"]}, 8).stop == ("USER:",)
