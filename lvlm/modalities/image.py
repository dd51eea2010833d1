"""Images: ``jpg``/``png``/``webp`` members, RGB decoding, pad-to-square or centre crop, ``[n, 3, s, s]`` batches."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

import torch

from lvlm.data.decoding import decode_image
from lvlm.data.transforms import ImageTransform
from lvlm.modalities.base import Modality
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

    def __init__(
        self, tower: Callable[[], VisionTower], token: str | None = None, image_mode: Literal["crop", "pad"] = "crop"
    ) -> None:
        super().__init__(tower, token)
        if image_mode not in ("crop", "pad"):
            raise ValueError(f"image_mode must be 'crop' or 'pad', got {image_mode!r}")
        self.image_mode = image_mode

    def init_args(self) -> dict[str, Any]:
        return super().init_args() | {"image_mode": self.image_mode}

    def decode(self, payload: Any, *, key: str, num_frames: int, backend: str | None = None) -> Any:
        return decode_image(payload, key=key)

    def make_transform(
        self, *, augment: bool = False, seed: int | None = None, normalize: bool = True
    ) -> Callable[[Any], torch.Tensor]:
        pre = self.tower_facts.preprocessing
        return ImageTransform(
            pre.size, pre.mean, pre.std, mode=self.image_mode, augment=augment, seed=seed, normalize=normalize
        )
