"""A loaded model's modalities come from what it recorded (vetted class paths), else from the built-in ones."""

from __future__ import annotations

import pytest

from lvlm.core.errors import UnsafeInputError, UserError
from lvlm.modalities import ImageModality, VideoModality
from lvlm.modalities.saved import saved_modalities
from tests.inference.tiny_checkpoint import build_tiny_model


@pytest.fixture(scope="module")
def model():
    return build_tiny_model()[0]


def test_unrecorded_layouts_get_the_built_in_modalities_images_padded(model):
    model.modality_specs = {}
    built = saved_modalities(model, "ckpt/config.json")
    assert isinstance(built["image"], ImageModality) and isinstance(built["video"], VideoModality)
    assert built["image"].image_mode == "pad" and built["image"].token == "<image>"
    assert (built["image"].num_tokens(1), built["video"].num_tokens(4)) == (4, 20)  # from the loaded towers


def test_recorded_specs_are_rebuilt_with_their_arguments(model):
    model.modality_specs = {
        "image": {"class_path": "lvlm.modalities.image.ImageModality", "init_args": {"image_mode": "crop"}},
        "video": {"class_path": "lvlm.modalities.VideoModality", "init_args": {"token": None}},
    }
    built = saved_modalities(model, "ckpt/lvlm_config.json")
    assert built["image"].image_mode == "crop" and built["video"].token == "<video>"
    assert built["image"].build_tower() is model.towers["image"]  # the loaded tower, not a new one


@pytest.mark.parametrize("class_path", ["os.system", "subprocess.run", "lvlm.models.projector.LinearProjector"])
def test_a_recorded_class_path_outside_the_modalities_is_refused(model, class_path):
    model.modality_specs = {"image": {"class_path": class_path, "init_args": {}}}
    with pytest.raises(UnsafeInputError, match=r"ckpt/lvlm_config.json: modality_specs.image.class_path"):
        saved_modalities(model, "ckpt/lvlm_config.json")


def test_an_unrecorded_modality_without_a_built_in_class_is_an_error(model):
    model.modality_specs = {}
    towers = dict(model.towers.items())
    model.towers["thermal"] = towers["image"]
    model.modalities["thermal"] = model.modalities["image"]
    try:
        with pytest.raises(UserError, match="'thermal' records no class path"):
            saved_modalities(model, "ckpt/config.json")
    finally:
        del model.towers["thermal"], model.modalities["thermal"]
