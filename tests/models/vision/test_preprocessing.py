"""``Preprocessing`` takes any channel count and a non-square size; towers follow it (idle input, normalisation)."""

from __future__ import annotations

import pytest
import torch

from lvlm.models.vision.base import Preprocessing
from lvlm.models.vision.timm_tower import TimmVisionTower
from tests.models.vision.gray_tower import GrayTower


def test_channels_and_sides_follow_the_declaration():
    grey = Preprocessing((16, 24), (0.5,), (0.25,))
    assert (grey.channels, grey.height, grey.width, grey.shape) == (1, 16, 24, (1, 16, 24))
    assert Preprocessing(224).shape == (3, 224, 224)  # CLIP's statistics by default
    assert Preprocessing([32, 32], [0.1, 0.2], [0.3, 0.4]) == Preprocessing(32, (0.1, 0.2), (0.3, 0.4))  # from JSON
    assert Preprocessing(**grey.to_dict()) == grey


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (((16, 24), (0.5,), (0.25, 0.25)), r"one value per channel .*got \(0.5,\) and \(0.25, 0.25\)"),
        ((16, (), ()), r"one value per channel"),
        ((16, (0.5,), (0.0,)), r"std positive"),
        (((16, 0), (0.5,), (0.25,)), r"size is a positive side or \(height, width\), got \(16, 0\)"),
        (((1, 2, 3), (0.5,), (0.25,)), r"size is a positive side"),
    ],
)
def test_inconsistent_declarations_are_refused_naming_the_values(args, message):
    with pytest.raises(ValueError, match=message):
        Preprocessing(*args)


def test_a_one_channel_non_square_tower_encodes_idle_uint8_and_float_input():
    tower = GrayTower()
    assert tower.idle_pixels().shape == (1, 1, 16, 24)
    assert tower(tower.idle_pixels()).shape == (1, 6, 8)
    raw = torch.randint(0, 256, (2, 1, 16, 24), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    normalised = (raw.float() / 255 - 0.5) / 0.25
    torch.testing.assert_close(tower(raw), tower(normalised))  # the tower normalises uint8 with its one mean/std
    videos = raw.unsqueeze(0)  # [n, t, c, h, w]: 2 frames
    assert tower(videos).shape == (1, 12, 8)


def test_a_timm_tower_built_for_one_channel_and_a_non_square_input_declares_both():
    kwargs = {"in_chans": 1, "img_size": (32, 48), "depth": 2, "embed_dim": 16, "num_heads": 2}
    tower = TimmVisionTower("vit_tiny_patch16_224", model_kwargs=kwargs)
    pre = tower.preprocessing
    assert pre.shape == (1, 32, 48) and pre.mean == (0.5,) and pre.std == (0.5,)
    assert tower(tower.idle_pixels()).shape == (1, tower.tokens_per_image, 16) and tower.tokens_per_image == 6
