"""``DepthTower``: a small ViT for 1-channel depth maps (patch embedding + transformer encoder layers).

Legend: ``n`` maps, ``c`` channels (1), ``s`` side, ``k`` patches (tokens), ``d`` width.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from lvlm.models.vision.base import Preprocessing, VisionTower

DEPTH_MEAN = (0.5, 0.5, 0.5)  # VisionTower's preprocessing is 3-valued; a depth map uses the first value
DEPTH_STD = (0.25, 0.25, 0.25)


class DepthTower(VisionTower):
    """A ViT over depth maps, one token per patch.

    Args:
        size: input side in pixels.
        patch: patch side (``(size / patch) ** 2`` tokens per map).
        width: token width ``d``.
        layers: transformer encoder layers.
        heads: attention heads.
        in_chans: input channels (1: depth alone).
        frozen: start frozen (as lvlm's towers do).
    """

    def __init__(
        self,
        size: int = 32,
        patch: int = 8,
        width: int = 32,
        layers: int = 2,
        heads: int = 4,
        in_chans: int = 1,
        frozen: bool = True,
    ) -> None:
        super().__init__(frozen)
        if size % patch:
            raise ValueError(f"DepthTower: size {size} is not a multiple of patch {patch}")
        self.size, self.patch, self.width, self.layers, self.heads, self.in_chans = (
            size,
            patch,
            width,
            layers,
            heads,
            in_chans,
        )
        self.embed = nn.Conv2d(in_chans, width, kernel_size=patch, stride=patch)
        self.position = nn.Parameter(torch.zeros(1, (size // patch) ** 2, width))
        layer = nn.TransformerEncoderLayer(width, heads, dim_feedforward=2 * width, batch_first=True, dropout=0.0)
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        nn.init.normal_(self.position, std=0.02)
        if frozen:
            self.freeze()

    @property
    def preprocessing(self) -> Preprocessing:
        return Preprocessing(self.size, DEPTH_MEAN, DEPTH_STD)

    @property
    def hidden_size(self) -> int:
        return self.width

    def idle_pixels(self, device: torch.device | str = "cpu") -> torch.Tensor:
        """One map of zeros, ``[1, c, s, s]`` with this tower's channels (what a sharded run encodes on a rank
        whose batch has no depth map)."""
        return torch.zeros(1, self.in_chans, self.size, self.size, device=device)

    @property
    def tokens_per_image(self) -> int:
        return (self.size // self.patch) ** 2

    @property
    def block_classes(self) -> tuple[type[nn.Module], ...]:
        return (nn.TransformerEncoderLayer,)

    def to_config(self) -> dict[str, Any]:
        return {
            "size": self.size,
            "patch": self.patch,
            "width": self.width,
            "layers": self.layers,
            "heads": self.heads,
            "in_chans": self.in_chans,
            "frozen": self.frozen,
        }

    def encode_frames(self, pixels: torch.Tensor, num_frames: int) -> torch.Tensor:
        """``[n, c, s, s]`` normalised depth → ``[n, k, d]`` tokens."""
        tokens = self.embed(pixels).flatten(2).transpose(1, 2) + self.position
        return self.encoder(tokens)
