"""Images: ``jpg``/``png``/``webp`` members, RGB decoding, pad or centre crop to the tower's input, ``[n, c, h, w]``
batches (``c`` and ``h``/``w`` from the tower's preprocessing: 1 channel gives grayscale)."""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import torch
from PIL import Image

from lvlm.data.decoding import decode_image
from lvlm.data.decoding.image import to_rgb
from lvlm.data.transforms import ImageTransform
from lvlm.models.modality import Modality
from lvlm.models.vision.base import VisionTower

IMAGE_EXTENSIONS = ("jpg", "jpeg", "png", "webp")


class ImageModality(Modality):
    """Still images (``<image>``).

    Args:
        tower: factory of the image tower.
        token: the placeholder token (``<image>`` under the name ``image``).
        image_mode: ``crop`` (resize + centre crop; the paper's stage 1) or ``pad`` (pad to square with the
            mean colour; stage 2 and evaluation).
    """

    extensions = IMAGE_EXTENSIONS
    marker_rank = 1  # after videos, as the original writes them
    file_extensions = (*IMAGE_EXTENSIONS, "bmp")  # the original CLI also opens .bmp images (PIL reads them)

    def __init__(
        self, tower: Callable[[], VisionTower], token: str | None = None, image_mode: Literal["crop", "pad"] = "crop"
    ) -> None:
        super().__init__(tower, token)
        if image_mode not in ("crop", "pad"):
            raise ValueError(f"image_mode must be 'crop' or 'pad', got {image_mode!r}")
        self.image_mode = image_mode

    def init_args(self) -> dict[str, Any]:
        return super().init_args() | {"image_mode": self.image_mode}

    def shard_members(self, path: Path, index: int, count: int, key: str, **options: Any) -> dict[str, bytes]:
        """The image as it is (``jpg``, ``png``, ...), or as a high-quality JPEG for other formats (gif, bmp, tiff).

        Raises:
            MediaDecodeError: the file is not a decodable image.
        """
        data = path.read_bytes()
        image = decode_image(data, key=key)
        ext = path.suffix.lower().lstrip(".")
        if ext not in self.extensions:
            buffer = io.BytesIO()
            image.save(buffer, format="JPEG", quality=95)
            data, ext = buffer.getvalue(), "jpg"
        return {(f"{index}." if count > 1 else "") + ext: data}

    def decode(self, payload: Any, *, key: str, num_frames: int, backend: str | None = None) -> Any:
        """Bytes, a path, or an already decoded PIL image → RGB (the decoder's rules for every mode)."""
        return to_rgb(payload) if isinstance(payload, Image.Image) else decode_image(payload, key=key)

    def make_transform(
        self, *, augment: bool = False, seed: int | None = None, normalize: bool = True
    ) -> Callable[[Any], torch.Tensor]:
        pre = self.tower_facts.preprocessing
        return ImageTransform(
            pre.size, pre.mean, pre.std, mode=self.image_mode, augment=augment, seed=seed, normalize=normalize
        )
