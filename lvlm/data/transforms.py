"""Image and video transforms built from a tower's declared preprocessing (size, mean, std), given as values.

Shapes: ``t`` frames, ``h``/``w`` height/width, ``s`` the tower's input size.

Differences from the original Video-LLaVA (spec §6.2-6.3), all deliberate:
- Videos are resized as uint8 and normalised after the crop; the original normalises float frames at full
  resolution first, which costs 4x the memory traffic and gives the same values up to interpolation rounding.
- No random flip unless ``augment=True``: the original flips videos at random even at evaluation.
- Augmentation is a random resized crop only, never a flip: captions and questions talk about left/right
  (and the synthetic world asks for motion direction), which a flip would silently falsify.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from typing import Literal

import numpy as np
import torch
from PIL import Image

from lvlm.models.vision.pixels import CLIP_MEAN, CLIP_STD, normalize_pixels

__all__ = ["CLIP_MEAN", "CLIP_STD", "ImageTransform", "VideoTransform", "normalize_pixels"]

AUGMENT_SCALE = (0.6, 1.0)  # area fraction kept by the random resized crop
AUGMENT_RATIO = (3 / 4, 4 / 3)


def _crop_box(height: int, width: int, rng: random.Random) -> tuple[int, int, int, int]:
    """A random ``(top, left, h, w)`` box of ``AUGMENT_SCALE`` area and ``AUGMENT_RATIO`` aspect ratio."""
    for _ in range(10):
        area = height * width * rng.uniform(*AUGMENT_SCALE)
        ratio = math.exp(rng.uniform(math.log(AUGMENT_RATIO[0]), math.log(AUGMENT_RATIO[1])))
        w, h = round(math.sqrt(area * ratio)), round(math.sqrt(area / ratio))
        if 0 < w <= width and 0 < h <= height:
            return rng.randint(0, height - h), rng.randint(0, width - w), h, w
    side = min(height, width)
    return (height - side) // 2, (width - side) // 2, side, side


class ImageTransform:
    """PIL image -> normalised float32 ``[3, s, s]`` (or uint8 with ``normalize=False``).

    Args:
        size: Side ``s`` of the square output (the tower's input size, 224 for CLIP ViT-L/14).
        mean: Per-channel mean used to normalise (and, in ``"pad"`` mode, the padding colour).
        std: Per-channel standard deviation.
        mode: ``"crop"``: bicubic resize of the short side to ``s`` then centre crop (HF ``CLIPImageProcessor``,
            the original's stage 1). ``"pad"``: pad to a square with the mean colour
            ``tuple(int(m * 255) for m in mean)``, image centred, then resize (the original's stage 2 and eval).
        augment: Training only: a random resized crop (area 60-100 %) instead of the centre crop.
        seed: Seed of the augmentation's random generator.
        normalize: False returns uint8 ``[3, s, s]`` (0-255) instead: a quarter of the bytes between processes,
            normalised later by the tower (``VisionTower.forward`` takes uint8 pixels).
    """

    def __init__(
        self,
        size: int,
        mean: Sequence[float] = CLIP_MEAN,
        std: Sequence[float] = CLIP_STD,
        mode: Literal["crop", "pad"] = "crop",
        augment: bool = False,
        seed: int | None = None,
        normalize: bool = True,
    ) -> None:
        if mode not in ("crop", "pad"):
            raise ValueError(f"ImageTransform mode must be 'crop' or 'pad', got {mode!r}")
        self.size, self.mode, self.augment, self.normalize = size, mode, augment, normalize
        self.mean = torch.tensor(mean, dtype=torch.float32)
        self.std = torch.tensor(std, dtype=torch.float32)
        self.pad_color = tuple(int(m * 255) for m in mean)
        self._rng = random.Random(seed)

    def __call__(self, img: Image.Image) -> torch.Tensor:
        """Transform one RGB image. Returns float32 ``[3, s, s]``."""
        img = img if img.mode == "RGB" else img.convert("RGB")
        if self.mode == "pad":
            img = self.expand_to_square(img)
        if self.augment:
            top, left, h, w = _crop_box(img.height, img.width, self._rng)
            img = img.resize((self.size, self.size), Image.Resampling.BICUBIC, box=(left, top, left + w, top + h))
        else:
            img = self.resize_and_center_crop(img)
        chw = torch.from_numpy(np.asarray(img, dtype=np.uint8).copy()).permute(2, 0, 1)
        return normalize_pixels(chw, self.mean, self.std) if self.normalize else chw.contiguous()

    def expand_to_square(self, img: Image.Image) -> Image.Image:
        """Pad to a square of the long side with the mean colour, image centred (the original's ``expand2square``)."""
        width, height = img.size
        if width == height:
            return img
        side = max(width, height)
        square = Image.new("RGB", (side, side), self.pad_color)
        square.paste(img, ((side - width) // 2, (side - height) // 2))
        return square

    def resize_and_center_crop(self, img: Image.Image) -> Image.Image:
        """Bicubic resize of the short side to ``s`` (long side truncated as HF does), then centre crop."""
        width, height = img.size
        if width <= height:
            new_size = (self.size, int(self.size * height / width))
        else:
            new_size = (int(self.size * width / height), self.size)
        img = img.resize(new_size, Image.Resampling.BICUBIC)
        left, top = (new_size[0] - self.size) // 2, (new_size[1] - self.size) // 2
        return img.crop((left, top, left + self.size, top + self.size))


class VideoTransform:
    """uint8 frames ``[t, h, w, 3]`` -> normalised float32 ``[t, 3, s, s]`` (or uint8 with ``normalize=False``).

    Every frame gets the same geometry: short-side resize (bilinear, antialiased, as the original's
    ``ShortSideScale``) and centre crop, done on uint8 for all frames at once; normalisation comes last.

    Args:
        size: Side ``s`` of the square output.
        mean: Per-channel mean.
        std: Per-channel standard deviation.
        augment: Training only: one random resized crop (area 60-100 %) shared by all frames. Never a flip.
        seed: Seed of the augmentation's random generator.
        normalize: False returns uint8 ``[t, 3, s, s]`` instead (see :class:`ImageTransform`).
    """

    def __init__(
        self,
        size: int,
        mean: Sequence[float] = CLIP_MEAN,
        std: Sequence[float] = CLIP_STD,
        augment: bool = False,
        seed: int | None = None,
        normalize: bool = True,
    ) -> None:
        self.size, self.augment, self.normalize = size, augment, normalize
        self.mean = torch.tensor(mean, dtype=torch.float32)
        self.std = torch.tensor(std, dtype=torch.float32)
        self._rng = random.Random(seed)
        # Imported when the transform is built (in the main process, before DataLoader workers fork), not at
        # the first video: every worker would otherwise pay the ~1-2 s import on its first sample.
        import torchvision.transforms.v2.functional  # noqa: F401

    def __call__(self, frames: torch.Tensor) -> torch.Tensor:
        """Transform one video. Returns float32 ``[t, 3, s, s]``."""
        if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != torch.uint8:
            raise ValueError(
                f"VideoTransform wants uint8 frames [t, h, w, 3], got {frames.dtype} {tuple(frames.shape)}"
            )
        import torchvision.transforms.v2.functional as TF  # noqa: N812 (lazy: a slow import for every command)

        video = frames.permute(0, 3, 1, 2)
        height, width = video.shape[-2:]
        if self.augment:
            top, left, h, w = _crop_box(height, width, self._rng)
            video = TF.resized_crop(video, top, left, h, w, [self.size, self.size], antialias=True)
        else:
            short = min(height, width)
            new_size = (
                [self.size, int(self.size * width / short)]
                if height <= width
                else [int(self.size * height / short), self.size]
            )
            video = TF.center_crop(TF.resize(video, new_size, antialias=True), [self.size, self.size])
        return normalize_pixels(video, self.mean, self.std) if self.normalize else video.contiguous()
