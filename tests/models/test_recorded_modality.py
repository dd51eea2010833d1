"""A saved model's modalities come back as the classes it recorded (vetted class paths), bound to the model."""

from __future__ import annotations

import json

import pytest

from lvlm.core.errors import UnsafeInputError, UserError
from lvlm.modalities import ImageModality, VideoModality
from lvlm.models.recorded_modality import TowerModality
from lvlm.models.video_llava import VideoLLaVA
from tests.inference.tiny_checkpoint import build_tiny_model

SPECS = {
    "image": {"class_path": "lvlm.modalities.image.ImageModality", "init_args": {"image_mode": "crop"}},
    "video": {"class_path": "lvlm.modalities.VideoModality", "init_args": {"token": None}},
}


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    model = build_tiny_model()[0]
    model.modality_specs = SPECS
    return model.save_pretrained(tmp_path_factory.mktemp("saved"))


def test_recorded_specs_are_rebuilt_with_their_arguments_around_the_loaded_towers(saved):
    model = VideoLLaVA.from_pretrained(saved)
    image, video = model.modalities["image"], model.modalities["video"]
    assert isinstance(image, ImageModality) and image.image_mode == "crop" and image.name == "image"
    assert isinstance(video, VideoModality) and video.token == "<video>" and video.input_name == "videos"
    assert image.build_tower() is model.towers["image"]  # the loaded tower, not a new one
    assert (image.num_tokens(1), video.num_tokens(4)) == (4, 20)
    assert model.placeholder_ids == [image.token_id, video.token_id]


def test_the_file_keeps_its_format(saved):
    """``modalities`` holds each binding as it always did: old files load, new files read in older lvlm."""
    config = json.loads((saved / "lvlm_config.json").read_text())
    assert [sorted(m) for m in config["modalities"]] == [["input_name", "name", "token", "token_id"]] * 2
    assert config["modalities"][0]["input_name"] == "images" and config["modality_specs"]["image"] == SPECS["image"]


def test_a_model_saved_without_specs_loads_tower_modalities(tmp_path):
    build_tiny_model()[0].save_pretrained(tmp_path)
    model = VideoLLaVA.from_pretrained(tmp_path)
    assert all(isinstance(m, TowerModality) for m in model.modalities.values())
    with pytest.raises(UserError, match="'image' was given as a bare tower"):
        model.modalities["image"].make_transform()


@pytest.mark.parametrize("class_path", ["os.system", "subprocess.run", "lvlm.models.projector.LinearProjector"])
def test_a_recorded_class_path_outside_the_modalities_is_refused(saved, tmp_path, class_path):
    config = json.loads((saved / "lvlm_config.json").read_text())
    config["modality_specs"]["image"]["class_path"] = class_path
    (tmp_path / "lvlm_config.json").write_text(json.dumps(config))
    (tmp_path / "model.safetensors").symlink_to(saved / "model.safetensors")
    with pytest.raises(UnsafeInputError, match=r"lvlm_config.json: modality_specs.image.class_path"):
        VideoLLaVA.from_pretrained(tmp_path)


def test_a_recorded_input_name_other_than_the_plural_is_one_clear_error(saved, tmp_path):
    config = json.loads((saved / "lvlm_config.json").read_text())
    config["modalities"][0]["input_name"] = "pictures"
    (tmp_path / "lvlm_config.json").write_text(json.dumps(config))
    (tmp_path / "model.safetensors").symlink_to(saved / "model.safetensors")
    with pytest.raises(UserError, match=r"modalities\[0\]: input_name 'pictures' is not 'images'"):
        VideoLLaVA.from_pretrained(tmp_path)
