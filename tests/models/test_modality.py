"""A modality reads its tower's token counts and preprocessing without weights; the data side follows the tower."""

from __future__ import annotations

import functools

import pytest
import torch

from lvlm.modalities import ImageModality, VideoModality
from lvlm.models.vision.clip_tower import LanguageBindVideoTower
from lvlm.models.vision.timm_tower import TimmVisionTower
from tests.models.tiny import vision_dict


def test_mae_ablation_changes_token_count_and_normalisation():
    mae = functools.partial(TimmVisionTower, model_name="vit_large_patch16_224.mae", pretrained=False)
    image = ImageModality(mae, image_mode="pad").bind("image")
    facts = image.tower_facts
    assert (facts.tokens_per_image, facts.preprocessing.size, image.image_mode, image.token) == (
        196,
        224,
        "pad",
        "<image>",
    )
    assert facts.preprocessing.mean == pytest.approx((0.485, 0.456, 0.406))  # ImageNet's, not CLIP's
    assert image.num_tokens(num_frames=8) == 196


def test_video_tokens_per_frame_and_member_names():
    tower = functools.partial(LanguageBindVideoTower, vision_dict(), num_frames=3)
    video = VideoModality(tower, token="<clip>").bind("video")
    assert video.num_tokens(num_frames=3) == 3 * 5 and video.input_name == "videos" and video.token == "<clip>"
    assert video.member_index("mp4") == (None, None) and video.member_index("1.webm") == (1, None)
    assert video.member_index("0.frames.12.jpg") == (0, 12) and video.member_index("jpg") is None
    assert ImageModality(tower).member_index("2.png") == (2, None)


def test_facts_are_read_on_the_meta_device_without_building_weights():
    built = []

    def tower():
        module = LanguageBindVideoTower(vision_dict(), num_frames=3)
        built.append(next(module.parameters()).device)
        return module

    assert VideoModality(tower).bind("video").tower_facts.tokens_per_frame == 5
    assert built == [torch.device("meta")]


def test_saved_spec_records_the_data_side_arguments():
    spec = ImageModality(lambda: None, token="<img>", image_mode="pad").to_spec()
    assert spec == {
        "class_path": "lvlm.modalities.image.ImageModality",
        "init_args": {"token": "<img>", "image_mode": "pad"},
    }
