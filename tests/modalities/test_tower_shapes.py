"""The built-in image and video modalities honour a tower's channels and non-square size: decode, transform,
batch and encode (a 1-channel ``(16, 24)`` tower; grayscale images and frames)."""

from __future__ import annotations

import io

import numpy as np
import torch
from PIL import Image

from lvlm.modalities import ImageModality, VideoModality
from tests.models.vision.gray_tower import GrayTower


def _png(width: int, height: int) -> bytes:
    rng = np.random.default_rng(0)
    buffer = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


def test_images_reach_a_one_channel_non_square_tower_in_both_modes():
    tower = GrayTower()
    for mode in ("crop", "pad"):
        image = ImageModality(GrayTower, image_mode=mode).bind("image")
        items = [image.load(_png(40, 30), key="a", num_frames=1), image.load(_png(30, 50), key="b", num_frames=1)]
        batch = image.collate(items)
        assert batch.shape == (2, 1, 16, 24) and batch.dtype == torch.float32
        raw = image.collate(
            [image.make_transform(normalize=False)(image.decode(_png(40, 30), key="a", num_frames=1))] * 2
        )
        assert raw.shape == (2, 1, 16, 24) and raw.dtype == torch.uint8
        torch.testing.assert_close(tower(raw)[0], tower(batch)[0])  # uint8 and float paths agree
        assert tower(batch).shape == (2, image.num_tokens(1), 8) == (2, 6, 8)


def test_video_frames_reach_a_one_channel_non_square_tower():
    video = VideoModality(GrayTower).bind("video")
    frames = torch.randint(0, 256, (3, 36, 64, 3), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
    item = video.make_transform()(frames)
    assert item.shape == (3, 1, 16, 24)
    assert GrayTower()(video.collate([item, item])).shape == (2, 3 * 6, 8) == (2, video.num_tokens(3), 8)
