"""Towers share one projector, so they share one width: a mismatch is refused when the model is built."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from lvlm import VideoLLaVA
from lvlm.core.errors import UserError
from lvlm.models.language_model import LanguageModel
from lvlm.models.projector import MLPGeluProjector
from lvlm.models.vision.clip_tower import CLIPVisionTower, LanguageBindVideoTower
from tests.models.tiny import text_dict, vision_dict
from tests.training.tiny import instantiate_module, tiny_model_args, write_tokenizer

ANY_MISMATCH = (
    r"^towers differ in width: '\w+' \(\w+\) is \d+ wide, '\w+' \(\w+\) is \d+ wide; all towers share one projector, "
    r"so they need one width \(a tower's hidden_size\): change one of them$"
)
MISMATCH = (
    r"^towers differ in width: 'image' \(CLIPVisionTower\) is 32 wide, 'video' \(LanguageBindVideoTower\) is 64 wide; "
    r"all towers share one projector"
)


def towers(video_width: int) -> dict:
    video = LanguageBindVideoTower(vision_dict(hidden_size=video_width), num_frames=2)
    return {"image": CLIPVisionTower(vision_dict()), "video": video}


def test_towers_of_different_widths_are_refused_naming_both():
    with pytest.raises(UserError, match=MISMATCH) as caught:
        VideoLLaVA.build(LanguageModel(config=text_dict()), towers(video_width=64))
    assert re.match(ANY_MISMATCH, str(caught.value))  # one line, in the form docs/extending.md shows


def test_the_doc_shows_the_error_as_lvlm_writes_it():
    doc = (Path(__file__).resolve().parents[2] / "docs" / "extending.md").read_text()
    (shown,) = re.findall(r"```text\n(towers differ in width.*?)\n```", doc)
    assert re.match(ANY_MISMATCH, shown)


def test_towers_of_one_width_build_with_a_projector_of_that_width():
    model = VideoLLaVA.build(LanguageModel(config=text_dict()), towers(video_width=32))
    assert model.projector.in_features == 32 and sorted(model.towers) == ["image", "video"]


def test_a_projector_instance_of_another_width_is_refused_naming_the_towers():
    with pytest.raises(UserError, match=r"does not fit the shared projector, which takes 16: 'image' \(CLIP"):
        VideoLLaVA.build(LanguageModel(config=text_dict()), towers(32), projector=MLPGeluProjector(16, 48))
    model = VideoLLaVA.build(LanguageModel(config=text_dict()), towers(32), projector=MLPGeluProjector(32, 48))
    assert model.projector.in_features == 32


def test_an_added_modality_of_another_width_is_refused_naming_an_existing_tower():
    model = VideoLLaVA.build(LanguageModel(config=text_dict()), {"image": CLIPVisionTower(vision_dict())})
    with pytest.raises(UserError, match=r"'image' \(CLIPVisionTower\) is 32 wide, 'thermal' \(CLIPVisionTower\) is 8"):
        model.add_modality("thermal", CLIPVisionTower(vision_dict(hidden_size=8, num_attention_heads=2)))
    assert model.add_modality("thermal", CLIPVisionTower(vision_dict())).name == "thermal"


def test_lvlm_fit_builds_the_model_and_refuses_the_mismatch_there(tmp_path):
    args = tiny_model_args(write_tokenizer(tmp_path))
    module = instantiate_module(args)
    module.configure_model()
    assert module.model.projector.in_features == 32
    args["parts"]["modalities"]["video"]["init_args"]["tower"]["init_args"]["config"]["hidden_size"] = 64
    module = instantiate_module(args)
    with pytest.raises(UserError, match=MISMATCH):
        module.configure_model()
