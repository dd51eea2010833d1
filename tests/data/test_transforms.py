"""Image and video transforms: shapes, padding colour, determinism, normalisation by hand."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from lvlm.data.transforms import CLIP_MEAN, CLIP_STD, ImageTransform, VideoTransform


def _gradient(width: int, height: int) -> Image.Image:
    rgb = np.zeros((height, width, 3), np.uint8)
    rgb[..., 0] = np.linspace(0, 255, width, dtype=np.uint8)[None, :]
    rgb[..., 1] = np.linspace(0, 255, height, dtype=np.uint8)[:, None]
    rgb[..., 2] = 77
    return Image.fromarray(rgb)


def _by_hand(rgb: tuple[int, int, int]) -> list[float]:
    return [(v / 255 - m) / s for v, m, s in zip(rgb, CLIP_MEAN, CLIP_STD)]


@pytest.mark.parametrize("mode", ["crop", "pad"])
@pytest.mark.parametrize("size", [(50, 30), (30, 50), (40, 40), (300, 200)])
def test_image_output_shape_and_dtype(mode, size):
    out = ImageTransform(32, CLIP_MEAN, CLIP_STD, mode=mode)(_gradient(*size))
    assert out.shape == (3, 32, 32) and out.dtype == torch.float32


def test_normalisation_matches_a_hand_computation():
    out = ImageTransform(16, CLIP_MEAN, CLIP_STD)(Image.new("RGB", (20, 16), (200, 30, 77)))
    assert torch.allclose(out[:, 5, 7], torch.tensor(_by_hand((200, 30, 77))), atol=1e-6)
    assert out[0, 5, 7].item() == pytest.approx((200 / 255 - 0.48145466) / 0.26862954, abs=1e-6)


def test_pad_mode_fills_with_the_mean_colour_and_centres_the_image():
    transform = ImageTransform(32, CLIP_MEAN, CLIP_STD, mode="pad")
    assert transform.pad_color == (122, 116, 104)  # the original's expand2square background for CLIP
    out = transform(Image.new("RGB", (64, 32), (255, 0, 0)))  # wide: bands above and below
    assert torch.allclose(out[:, 0, 16], torch.tensor(_by_hand((122, 116, 104))), atol=1e-6)  # padded pixel
    assert torch.allclose(out[:, 31, 16], torch.tensor(_by_hand((122, 116, 104))), atol=1e-6)
    assert torch.allclose(out[:, 16, 16], torch.tensor(_by_hand((255, 0, 0))), atol=1e-6)  # the image
    assert torch.allclose(out[:, 16, 0], torch.tensor(_by_hand((255, 0, 0))), atol=1e-6)  # full width kept


def test_crop_mode_keeps_the_centre():
    image = Image.new("RGB", (90, 30), (0, 0, 255))
    image.paste((0, 255, 0), (30, 0, 60, 30))  # the central third is green
    out = ImageTransform(30, CLIP_MEAN, CLIP_STD, mode="crop")(image)
    assert torch.allclose(out[:, 15, 15], torch.tensor(_by_hand((0, 255, 0))), atol=1e-6)
    assert torch.allclose(out[:, 15, 2], torch.tensor(_by_hand((0, 255, 0))), atol=0.05)


def test_eval_transforms_are_deterministic():
    image = _gradient(57, 41)
    transform = ImageTransform(24, CLIP_MEAN, CLIP_STD)
    assert torch.equal(transform(image), transform(image))
    frames = torch.randint(0, 256, (4, 30, 50, 3), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    video = VideoTransform(24, CLIP_MEAN, CLIP_STD)
    assert torch.equal(video(frames), video(frames))


def test_augmentation_is_opt_in_and_seeded():
    image = _gradient(80, 60)
    a = ImageTransform(24, augment=True, seed=1)
    b = ImageTransform(24, augment=True, seed=1)
    first, second = a(image), a(image)
    assert first.shape == (3, 24, 24) and not torch.equal(first, second)  # different crops
    assert torch.equal(first, b(image))  # same seed, same crops


def test_video_shape_and_per_frame_values():
    frames = torch.zeros(3, 40, 60, 3, dtype=torch.uint8)
    for t, colour in enumerate([(255, 0, 0), (0, 255, 0), (10, 20, 30)]):
        frames[t] = torch.tensor(colour, dtype=torch.uint8)
    out = VideoTransform(20, CLIP_MEAN, CLIP_STD)(frames)
    assert out.shape == (3, 3, 20, 20) and out.dtype == torch.float32
    for t, colour in enumerate([(255, 0, 0), (0, 255, 0), (10, 20, 30)]):
        assert torch.allclose(out[t, :, 10, 10], torch.tensor(_by_hand(colour)), atol=1e-6)


def test_video_is_never_flipped_and_keeps_the_centre():
    frames = torch.zeros(2, 20, 60, 3, dtype=torch.uint8)
    frames[:, :, 20:30] = 255  # white in the left half of the central third
    out = VideoTransform(20)(frames)
    left, right = out[:, 0, 10, 2], out[:, 0, 10, 17]
    assert (left > right).all()  # a flip would swap them
    augmented = VideoTransform(20, augment=True, seed=0)(frames)
    assert augmented.shape == (2, 3, 20, 20) and torch.equal(augmented[0], augmented[1])  # same crop for all frames


def test_video_rejects_wrong_layout():
    with pytest.raises(ValueError, match=r"uint8 frames \[t, h, w, 3\]"):
        VideoTransform(16)(torch.zeros(2, 3, 16, 16))
