"""A loaded model that records no modality class gets the built-in ones (images padded), in the model too."""

from __future__ import annotations

import pytest

from lvlm.core.errors import UserError
from lvlm.modalities import ImageModality, VideoModality
from lvlm.modalities.saved import saved_modalities
from lvlm.models.recorded_modality import TowerModality
from lvlm.models.vision.clip_tower import CLIPVisionTower
from tests.inference.tiny_checkpoint import build_tiny_model, vision_dict


def test_unrecorded_layouts_get_the_built_in_modalities_images_padded():
    model = build_tiny_model()[0]
    assert all(isinstance(m, TowerModality) for m in model.modalities.values())
    ids = {name: m.token_id for name, m in model.modalities.items()}
    built = saved_modalities(model, "ckpt/config.json")
    assert isinstance(built["image"], ImageModality) and isinstance(built["video"], VideoModality)
    assert built["image"].image_mode == "pad" and built["image"].token == "<image>"
    assert {name: m.token_id for name, m in built.items()} == ids
    assert (built["image"].num_tokens(1), built["video"].num_tokens(4)) == (4, 20)  # from the loaded towers
    assert built == model.modalities and built["image"].build_tower() is model.towers["image"]


def test_modalities_the_model_records_are_kept():
    model = build_tiny_model()[0]
    saved_modalities(model, "ckpt/config.json")
    image = model.modalities["image"]
    assert saved_modalities(model, "ckpt/config.json")["image"] is image


def test_an_unrecorded_modality_without_a_built_in_class_is_an_error():
    model = build_tiny_model()[0]
    model.add_modality("thermal", CLIPVisionTower(vision_dict()))
    with pytest.raises(UserError, match="'thermal' records no class path"):
        saved_modalities(model, "ckpt/config.json")
