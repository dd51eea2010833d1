"""``DepthTower``: a small ViT for 1-channel depth maps (patch embedding + transformer encoder layers).

Legend: ``n`` maps, ``c`` channels (1), ``h``/``w`` input size, ``k`` patches (tokens), ``d`` width.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from lvlm.models.vision.base import Preprocessing, VisionTower

DEPTH_MEAN, DEPTH_STD = 0.5, 0.25  # of depth in [0, 1], for every input channel


class DepthTower(VisionTower):
    """A ViT over depth maps, one token per patch.

    Args:
        size: input side in pixels, or ``(height, width)``: a non-square input is fine.
        patch: patch side (``(h / patch) * (w / patch)`` tokens per map).
        width: token width ``d``.
        layers: transformer encoder layers.
        heads: attention heads.
        in_chans: input channels (1: depth alone).
        frozen: start frozen (as lvlm's towers do).
    """

    def __init__(
        self,
        size: int | tuple[int, int] = 32,
        patch: int = 8,
        width: int = 32,
        layers: int = 2,
        heads: int = 4,
        in_chans: int = 1,
        frozen: bool = True,
    ) -> None:
        super().__init__(frozen)
        self.size = size if isinstance(size, int) else (int(size[0]), int(size[1]))
        sides = (size, size) if isinstance(size, int) else self.size
        if any(side % patch for side in sides):
            raise ValueError(f"DepthTower: size {size} is not a multiple of patch {patch}")
        self.patch, self.width, self.layers, self.heads, self.in_chans = patch, width, layers, heads, in_chans
        self.grid = (sides[0] // patch, sides[1] // patch)
        self.embed = nn.Conv2d(in_chans, width, kernel_size=patch, stride=patch)
        self.position = nn.Parameter(torch.zeros(1, self.grid[0] * self.grid[1], width))
        layer = nn.TransformerEncoderLayer(width, heads, dim_feedforward=2 * width, batch_first=True, dropout=0.0)
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        nn.init.normal_(self.position, std=0.02)
        if frozen:
            self.freeze()

    @property
    def preprocessing(self) -> Preprocessing:
        # One mean and std per input channel: ``idle_pixels()`` and the transforms follow ``in_chans`` and ``size``.
        return Preprocessing(self.size, (DEPTH_MEAN,) * self.in_chans, (DEPTH_STD,) * self.in_chans)

    @property
    def hidden_size(self) -> int:
        return self.width

    @property
    def tokens_per_image(self) -> int:
        return self.grid[0] * self.grid[1]

    @property
    def block_classes(self) -> tuple[type[nn.Module], ...]:
        return (nn.TransformerEncoderLayer,)

    def to_config(self) -> dict[str, Any]:
        return {
            "size": self.size if isinstance(self.size, int) else list(self.size),
            "patch": self.patch,
            "width": self.width,
            "layers": self.layers,
            "heads": self.heads,
            "in_chans": self.in_chans,
            "frozen": self.frozen,
        }

    def encode_frames(self, pixels: torch.Tensor, num_frames: int) -> torch.Tensor:
        """``[n, c, h, w]`` normalised depth → ``[n, k, d]`` tokens."""
        tokens = self.embed(pixels).flatten(2).transpose(1, 2) + self.position
        return self.encoder(tokens)
