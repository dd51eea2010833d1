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


GREY_MEAN, GREY_STD = (0.5,), (0.25,)


@pytest.mark.parametrize("mode", ["crop", "pad"])
@pytest.mark.parametrize("size", [(50, 30), (30, 50), (300, 200)])
def test_a_non_square_grayscale_output_has_the_declared_shape(mode, size):
    out = ImageTransform((16, 24), GREY_MEAN, GREY_STD, mode=mode)(_gradient(*size))
    assert out.shape == (1, 16, 24) and out.dtype == torch.float32
    raw = ImageTransform((16, 24), GREY_MEAN, GREY_STD, mode=mode, normalize=False)(_gradient(*size))
    assert raw.shape == (1, 16, 24) and raw.dtype == torch.uint8
    assert torch.allclose(out, (raw / 255 - 0.5) / 0.25, atol=1e-6)


def test_grayscale_is_pil_luma_normalised_with_the_one_mean_and_std():
    out = ImageTransform((8, 12), GREY_MEAN, GREY_STD)(Image.new("RGB", (30, 20), (200, 30, 77)))
    luma = Image.new("RGB", (1, 1), (200, 30, 77)).convert("L").getpixel((0, 0))
    assert torch.allclose(out, torch.full((1, 8, 12), (luma / 255 - 0.5) / 0.25), atol=1e-6)


def test_non_square_crop_keeps_the_centre_at_the_outputs_aspect():
    image = Image.new("RGB", (90, 30), (0, 0, 255))
    image.paste((0, 255, 0), (15, 0, 75, 30))  # the central 60 columns are green
    out = ImageTransform((10, 20), CLIP_MEAN, CLIP_STD, mode="crop")(image)  # 2:1 of a 3:1 image: 60 x 30 kept
    assert out.shape == (3, 10, 20)
    assert torch.allclose(out[:, 5, 1], torch.tensor(_by_hand((0, 255, 0))), atol=0.05)
    assert torch.allclose(out[:, 5, 18], torch.tensor(_by_hand((0, 255, 0))), atol=0.05)


def test_non_square_pad_pads_to_the_outputs_aspect_with_the_mean_colour():
    transform = ImageTransform((10, 20), CLIP_MEAN, CLIP_STD, mode="pad")
    out = transform(Image.new("RGB", (20, 20), (255, 0, 0)))  # square into 2:1: bands left and right
    assert transform.expand_to_aspect(Image.new("RGB", (20, 20))).size == (40, 20)
    assert torch.allclose(out[:, 5, 0], torch.tensor(_by_hand((122, 116, 104))), atol=1e-6)
    assert torch.allclose(out[:, 5, 19], torch.tensor(_by_hand((122, 116, 104))), atol=1e-6)
    assert torch.allclose(out[:, 5, 10], torch.tensor(_by_hand((255, 0, 0))), atol=1e-6)
    grey = ImageTransform((10, 20), GREY_MEAN, GREY_STD, mode="pad")
    assert grey.pad_color == 127 and grey(Image.new("RGB", (20, 20), (255, 255, 255)))[0, 5, 0] == pytest.approx(
        (127 / 255 - 0.5) / 0.25, abs=1e-6
    )


def test_non_square_augmentation_is_seeded_and_has_the_declared_shape():
    a, b = ImageTransform((12, 24), augment=True, seed=1), ImageTransform((12, 24), augment=True, seed=1)
    image = _gradient(80, 60)
    first, second = a(image), a(image)
    assert first.shape == (3, 12, 24) and not torch.equal(first, second)  # different crops
    assert torch.equal(first, b(image))  # same seed, same crops


def test_a_non_square_grayscale_video():
    frames = torch.zeros(2, 40, 90, 3, dtype=torch.uint8)
    frames[:, :, 30:60] = 255  # white centre third
    out = VideoTransform((10, 15), GREY_MEAN, GREY_STD)(frames)  # 3:2 of a 9:4 clip: 60 x 40 kept, then 15 x 10
    assert out.shape == (2, 1, 10, 15) and out.dtype == torch.float32
    assert out[0, 0, 5, 7].item() == pytest.approx((1 - 0.5) / 0.25, abs=1e-6)  # white centre
    assert out[0, 0, 5, 0].item() == pytest.approx((0 - 0.5) / 0.25, abs=1e-6)  # black at the kept edge
    colours = torch.randint(0, 256, (1, 16, 16, 3), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    video = VideoTransform(16, GREY_MEAN, GREY_STD, normalize=False)(colours)[0]
    image = ImageTransform(16, GREY_MEAN, GREY_STD, normalize=False)(Image.fromarray(colours[0].numpy()))
    assert torch.equal(video, image)  # grayscale frames are PIL's grayscale of the same pixels
    raw = VideoTransform((10, 15), GREY_MEAN, GREY_STD, augment=True, seed=0, normalize=False)(frames)
    assert raw.shape == (2, 1, 10, 15) and raw.dtype == torch.uint8 and torch.equal(raw[0], raw[1])


@pytest.mark.parametrize("transform", [ImageTransform, VideoTransform])
def test_channel_counts_other_than_one_or_three_are_refused_naming_the_counts(transform):
    with pytest.raises(ValueError, match=r"1-channel \(grayscale\) or 3-channel \(RGB\).*got 2 and 2 values"):
        transform(16, (0.5, 0.5), (0.2, 0.2))
    with pytest.raises(ValueError, match=r"got 3 and 1 values"):
        transform(16, (0.5, 0.5, 0.5), (0.2,))
    assert transform(16, (0.5,), (0.2,)).mean.shape == (1,)
