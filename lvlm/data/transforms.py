"""Image and video transforms built from a tower's declared preprocessing (size, mean, std), given as values.

Shapes: ``t`` frames, ``c`` channels (``len(mean)``: 3 for RGB, 1 for grayscale), ``h``/``w`` height/width of
the tower's input (``size`` is a square side ``s`` or ``(h, w)``).

Differences from the original Video-LLaVA (its ``process_images`` and video processor), all deliberate:
- Videos are resized as uint8 and normalised after the crop; the original normalises float frames at full
  resolution first, which costs 4x the memory traffic and gives the same values up to interpolation rounding.
- No random flip unless ``augment=True``: the original flips videos at random even at evaluation.
- Augmentation is a random resized crop only, never a flip: captions and questions talk about left/right
  (and the synthetic world asks for motion direction), which a flip would silently falsify.

Every transform here returns float32 normalised pixels, or uint8 (0-255) with ``normalize=False``; a tower
takes either (``VisionTower.forward`` normalises uint8 with its own mean and std).
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


def _crop_box(height: int, width: int, rng: random.Random, aspect: float = 1.0) -> tuple[int, int, int, int]:
    """A random ``(top, left, h, w)`` box of ``AUGMENT_SCALE`` area and ``AUGMENT_RATIO`` times ``aspect`` (the
    output's width / height) aspect ratio."""
    for _ in range(10):
        area = height * width * rng.uniform(*AUGMENT_SCALE)
        ratio = math.exp(rng.uniform(math.log(AUGMENT_RATIO[0]), math.log(AUGMENT_RATIO[1]))) * aspect
        w, h = round(math.sqrt(area * ratio)), round(math.sqrt(area / ratio))
        if 0 < w <= width and 0 < h <= height:
            return rng.randint(0, height - h), rng.randint(0, width - w), h, w
    side = min(height, width)
    return (height - side) // 2, (width - side) // 2, side, side


def output_sides(size: int | Sequence[int]) -> tuple[int, int]:
    """``(h, w)`` of a square side ``s`` or of ``(h, w)``."""
    if isinstance(size, int):
        return size, size
    height, width = size
    return int(height), int(width)


def cover_size(width: int, height: int, out_height: int, out_width: int) -> tuple[int, int]:
    """``(width, height)`` of the smallest resize covering the output with the input's aspect ratio: the short
    side (relative to the output's aspect) goes to the output's, the other truncated as HF does."""
    if width * out_height <= height * out_width:
        return out_width, max(out_height, int(out_width * height / width))
    return max(out_width, int(out_height * width / height)), out_height


def pil_luma(rgb: torch.Tensor) -> torch.Tensor:
    """uint8 ``[..., 3, h, w]`` -> uint8 ``[..., 1, h, w]``, exactly PIL's ``convert("L")`` (ITU-R 601-2 luma in
    16-bit fixed point, rounded), so grayscale video frames equal grayscale images of the same pixels."""
    r, g, b = rgb.to(torch.int32).unbind(-3)
    return ((r * 19595 + g * 38470 + b * 7471 + 0x8000) >> 16).to(torch.uint8).unsqueeze(-3)


def _channels(mean: Sequence[float], std: Sequence[float], owner: str) -> int:
    if len(mean) != len(std) or len(mean) not in (1, 3):
        raise ValueError(
            f"{owner} makes 1-channel (grayscale) or 3-channel (RGB) pixels from mean/std of that length, got "
            f"{len(mean)} and {len(std)} values; a tower taking other channels needs its modality's own transform"
        )
    return len(mean)


class ImageTransform:
    """PIL image -> normalised float32 ``[c, h, w]`` (or uint8 with ``normalize=False``).

    Args:
        size: Side ``s`` of a square output (the tower's input size, 224 for CLIP ViT-L/14), or ``(h, w)``.
        mean: Per-channel mean used to normalise (and, in ``"pad"`` mode, the padding colour); one value per
            output channel: 3 (RGB) or 1 (the image converted to grayscale, PIL's ``L``).
        std: Per-channel standard deviation, as many values as ``mean``.
        mode: ``"crop"``: bicubic resize of the short side to ``s`` then centre crop (HF ``CLIPImageProcessor``,
            the original's stage 1). ``"pad"``: pad to a square with the mean colour
            ``tuple(int(m * 255) for m in mean)``, image centred, then resize (the original's stage 2 and eval).
            A non-square output crops or pads to its own aspect ratio the same way.
        augment: Training only: a random resized crop (area 60-100 %) instead of the centre crop.
        seed: Seed of the augmentation's random generator.
        normalize: False returns uint8 ``[c, h, w]`` (0-255) instead: a quarter of the bytes between processes,
            normalised later by the tower (``VisionTower.forward`` takes uint8 pixels).
    """

    def __init__(
        self,
        size: int | tuple[int, int],
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
        self.height, self.width = output_sides(size)
        self.pil_mode = "L" if _channels(mean, std, "ImageTransform") == 1 else "RGB"
        self.mean = torch.tensor(mean, dtype=torch.float32)
        self.std = torch.tensor(std, dtype=torch.float32)
        colour = tuple(int(m * 255) for m in mean)
        self.pad_color: int | tuple[int, ...] = colour[0] if self.pil_mode == "L" else colour
        self._rng = random.Random(seed)

    def __call__(self, img: Image.Image) -> torch.Tensor:
        """Transform one image (any PIL mode). Returns float32 ``[c, h, w]``."""
        img = img if img.mode == self.pil_mode else img.convert(self.pil_mode)
        if self.mode == "pad" and not self.augment:
            img = self.pad_resize_and_center_crop(img)
        elif self.mode == "pad":
            img = self.expand_to_aspect(img)
        if self.augment:
            top, left, h, w = _crop_box(img.height, img.width, self._rng, self.width / self.height)
            img = img.resize((self.width, self.height), Image.Resampling.BICUBIC, box=(left, top, left + w, top + h))
        elif self.mode == "crop":
            img = self.resize_and_center_crop(img)
        hwc = np.asarray(img, dtype=np.uint8).reshape(self.height, self.width, -1)
        chw = torch.from_numpy(np.array(hwc.transpose(2, 0, 1), order="C"))  # one copy: writable, contiguous
        return normalize_pixels(chw, self.mean, self.std) if self.normalize else chw

    def expand_to_aspect(self, img: Image.Image) -> Image.Image:
        """Pad to the output's aspect ratio with the mean colour, image centred (for a square output, the
        original's ``expand2square``: a square of the long side)."""
        width, height = img.size
        box = max(width, round(height * self.width / self.height)), max(height, round(width * self.height / self.width))
        if box == (width, height):
            return img
        canvas = Image.new(img.mode, box, self.pad_color)
        canvas.paste(img, ((box[0] - width) // 2, (box[1] - height) // 2))
        return canvas

    def pad_resize_and_center_crop(self, img: Image.Image) -> Image.Image:
        """``resize_and_center_crop(expand_to_aspect(img))``, the same pixels, with less work when only rows are
        padded (an image wider than the output's aspect, the common landscape photo).

        PIL resizes in two passes, horizontal then vertical, each rounded to 8 bits. The horizontal pass treats
        rows independently, so it is run on the image's rows and on one padding row only, and the padded
        intermediate is assembled from them; the vertical pass then runs on it as on the padded canvas (same
        sizes, same coefficients). Padded columns mix with the image in the horizontal pass: the plain way.
        """
        width, height = img.size
        box = max(width, round(height * self.width / self.height)), max(height, round(width * self.height / self.width))
        if box[0] != width or box[1] == height:
            return self.resize_and_center_crop(self.expand_to_aspect(img))
        new_width, new_height = cover_size(*box, self.height, self.width)
        rows = img.resize((new_width, height), Image.Resampling.BICUBIC)  # horizontal pass only
        pad_row = Image.new(img.mode, (width, 1), self.pad_color).resize((new_width, 1), Image.Resampling.BICUBIC)
        padded = pad_row.resize((new_width, box[1]), Image.Resampling.NEAREST)  # that row, repeated
        padded.paste(rows, (0, (box[1] - height) // 2))
        out = padded.resize((new_width, new_height), Image.Resampling.BICUBIC)  # vertical pass only
        left, top = (new_width - self.width) // 2, (new_height - self.height) // 2
        return out.crop((left, top, left + self.width, top + self.height))

    def resize_and_center_crop(self, img: Image.Image) -> Image.Image:
        """Bicubic resize of the short side to ``s`` (long side truncated as HF does), then centre crop; for a
        non-square output, the smallest resize that covers it, then centre crop."""
        new_size = cover_size(*img.size, self.height, self.width)
        img = img.resize(new_size, Image.Resampling.BICUBIC)
        left, top = (new_size[0] - self.width) // 2, (new_size[1] - self.height) // 2
        return img.crop((left, top, left + self.width, top + self.height))


class VideoTransform:
    """uint8 RGB frames ``[t, h', w', 3]`` -> normalised float32 ``[t, c, h, w]`` (or uint8 with ``normalize=False``).

    Every frame gets the same geometry: short-side resize (bilinear, antialiased, as the original's
    ``ShortSideScale``) and centre crop, done on uint8 for all frames at once; normalisation comes last.

    Args:
        size: Side ``s`` of a square output, or ``(h, w)`` (resized to cover it, then centre-cropped).
        mean: Per-channel mean: 3 values (RGB) or 1 (frames converted to grayscale after the crop).
        std: Per-channel standard deviation, as many values as ``mean``.
        augment: Training only: one random resized crop (area 60-100 %) shared by all frames. Never a flip.
        seed: Seed of the augmentation's random generator.
        normalize: False returns uint8 ``[t, c, h, w]`` instead (see :class:`ImageTransform`).
    """

    def __init__(
        self,
        size: int | tuple[int, int],
        mean: Sequence[float] = CLIP_MEAN,
        std: Sequence[float] = CLIP_STD,
        augment: bool = False,
        seed: int | None = None,
        normalize: bool = True,
    ) -> None:
        self.size, self.augment, self.normalize = size, augment, normalize
        self.height, self.width = output_sides(size)
        self.grayscale = _channels(mean, std, "VideoTransform") == 1
        self.mean = torch.tensor(mean, dtype=torch.float32)
        self.std = torch.tensor(std, dtype=torch.float32)
        self._rng = random.Random(seed)
        # Imported when the transform is built (in the main process, before DataLoader workers fork), not at
        # the first video: every worker would otherwise pay the ~1-2 s import on its first sample.
        import torchvision.transforms.v2.functional  # noqa: F401

    def __call__(self, frames: torch.Tensor) -> torch.Tensor:
        """Transform one video. Returns float32 ``[t, c, h, w]``."""
        if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != torch.uint8:
            raise ValueError(
                f"VideoTransform wants uint8 frames [t, h, w, 3], got {frames.dtype} {tuple(frames.shape)}"
            )
        import torchvision.transforms.v2.functional as TF  # noqa: N812 (lazy: a slow import for every command)

        video = frames.permute(0, 3, 1, 2)
        height, width = video.shape[-2:]
        out = [self.height, self.width]
        if self.augment:
            top, left, h, w = _crop_box(height, width, self._rng, self.width / self.height)
            video = TF.resized_crop(video, top, left, h, w, out, antialias=True)
        else:
            new_width, new_height = cover_size(width, height, *out)
            video = TF.center_crop(TF.resize(video, [new_height, new_width], antialias=True), out)
        if self.grayscale:
            video = pil_luma(video)
        return normalize_pixels(video, self.mean, self.std) if self.normalize else video.contiguous()
