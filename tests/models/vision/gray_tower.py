"""A tiny 1-channel tower with a non-square input, as a plugin author would write one (shared by tests)."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from lvlm.models.vision.base import Preprocessing, VisionTower

HEIGHT, WIDTH, PATCH = 16, 24, 8  # 2 x 3 patches


class GrayTower(VisionTower):
    """Patch embedding of one channel, ``(16, 24)`` input, mean 0.5 and std 0.25 (one value each)."""

    def __init__(self, width: int = 8, frozen: bool = True) -> None:
        super().__init__(frozen=frozen)
        self.width = width
        self.embed = nn.Conv2d(1, width, PATCH, stride=PATCH)
        if frozen:
            self.freeze()

    preprocessing = property(lambda self: Preprocessing((HEIGHT, WIDTH), (0.5,), (0.25,)))
    hidden_size = property(lambda self: self.width)
    tokens_per_image = property(lambda self: (HEIGHT // PATCH) * (WIDTH // PATCH))
    block_classes = property(lambda self: ())

    def to_config(self) -> dict[str, Any]:
        return {"width": self.width}

    def encode_frames(self, pixels: torch.Tensor, num_frames: int) -> torch.Tensor:
        return self.embed(pixels).flatten(2).transpose(1, 2)
