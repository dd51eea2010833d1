"""Image decoding to RGB, whatever the stored mode."""

from __future__ import annotations

import io
import os

import numpy as np
from PIL import Image, UnidentifiedImageError

from lvlm.data.decoding.errors import ImageDecodeError

# Alpha is composited on white: a transparent logo on white is what a viewer shows, while dropping alpha
# would reveal whatever colour the encoder left in fully transparent pixels (often black).
ALPHA_BACKGROUND = (255, 255, 255)
_HIGH_BIT_MODES = {"I", "I;16", "I;16B", "I;16L", "I;16N", "F"}

# PIL imports its common format plugins (JPEG, PNG, GIF, BMP, PPM) at the first `Image.open`; done here, in the
# main process, DataLoader workers inherit them instead of each importing them at its first image.
Image.preinit()


def decode_image(source: bytes | str | os.PathLike, *, key: str = "?") -> Image.Image:
    """Decode an image from bytes or a path into an RGB PIL image.

    Modes: RGB as is; grayscale (``L``, ``1``) and ``CMYK``/``YCbCr`` converted; palette (``P``) expanded;
    images with alpha (``RGBA``, ``LA``, ``P``/``L`` with a transparency key) composited on white
    (:data:`ALPHA_BACKGROUND`); 16-bit and float grayscale rescaled to 8 bit. EXIF orientation is not
    applied, as in the original Video-LLaVA (which calls ``Image.open(path).convert("RGB")``).

    Args:
        source: Encoded image bytes (jpg, png, webp, ...) or a path to an image file.
        key: The sample key, used in error messages.

    Returns:
        A fully loaded PIL image in mode ``RGB``.

    Raises:
        ImageDecodeError: If the data is not a readable image (empty, truncated, unknown format, too large).
    """
    try:
        stream = io.BytesIO(source) if isinstance(source, (bytes, bytearray, memoryview)) else source
        with Image.open(stream) as img:
            img.load()
            # a decoded RGB image is already a fresh image: no copy (`to_rgb` copies to leave a caller's image alone)
            return img if img.mode == "RGB" else to_rgb(img)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError) as err:
        raise ImageDecodeError(key, source, f"{type(err).__name__}: {err}") from err


def to_rgb(img: Image.Image) -> Image.Image:
    """Convert a loaded PIL image of any mode to RGB (see :func:`decode_image` for the rules)."""
    if img.mode == "RGB":
        return img.copy()
    if img.mode in _HIGH_BIT_MODES:
        values = np.asarray(img, dtype=np.float64)
        top = values.max() if img.mode == "F" else (255.0 if img.mode == "I" and values.max() <= 255 else 65535.0)
        gray = np.clip(values / max(top, 1e-12) * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return Image.fromarray(gray, mode="L").convert("RGB")
    has_alpha = img.mode in {"RGBA", "LA", "PA", "RGBa", "La"} or "transparency" in img.info
    if not has_alpha:
        return img.convert("RGB")
    rgba = img.convert("RGBA")
    background = Image.new("RGBA", rgba.size, (*ALPHA_BACKGROUND, 255))
    return Image.alpha_composite(background, rgba).convert("RGB")
