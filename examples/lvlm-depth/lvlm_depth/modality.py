"""``DepthModality``: depth maps stored as 16-bit PNG (millimetres), fed to a depth tower as ``[n, c, h, w]``.

Shard members are ``depth.png`` (the only map of a sample) or ``0.depth.png``, ``1.depth.png`` (several), so
they never collide with image members (``png``). A JSON record names its maps in a ``depth`` field; on disk a
depth map is an ordinary ``.png``, so it is attached by name (``lvlm chat --media depth=scene.png``).

Legend: ``n`` maps, ``c`` channels, ``h``/``w`` the tower's input size.
"""

from __future__ import annotations

import io
import os
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from lvlm.data.decoding import MediaDecodeError
from lvlm.modalities import Modality
from lvlm.models.vision.base import VisionTower

_MEMBER = re.compile(r"^(?:(?P<index>\d+)\.)?depth\.png$")
_DEPTH_MODES = ("I;16", "I;16B", "I;16L", "I")


class DepthDecodeError(MediaDecodeError):
    """A depth map that cannot be decoded (reported as ``undecodable_depth``)."""

    modality = "depth"


class DepthModality(Modality):
    """Depth maps (``<depth>``).

    Args:
        tower: factory of the depth tower.
        token: the placeholder token (``<depth>`` under the name ``depth``).
        max_depth_mm: depth mapped to 1.0 (farther is clipped); 0 is 0.0.
        channels: 1 (a depth tower) or 3 (the map repeated, for an RGB tower): the tower's own channel count
            (``len(preprocessing.mean)``) must agree.
    """

    extensions = ("depth.png",)

    def __init__(
        self,
        tower: Callable[[], VisionTower],
        token: str | None = None,
        max_depth_mm: int = 10_000,
        channels: int = 1,
    ) -> None:
        super().__init__(tower, token)
        if channels not in (1, 3) or max_depth_mm <= 0:
            raise ValueError(
                f"DepthModality: channels must be 1 or 3 and max_depth_mm positive, got {channels}, {max_depth_mm}"
            )
        self.max_depth_mm, self.channels = max_depth_mm, channels

    def init_args(self) -> dict[str, Any]:
        return super().init_args() | {"max_depth_mm": self.max_depth_mm, "channels": self.channels}

    def member_index(self, member: str) -> tuple[int | None, int | None] | None:
        match = _MEMBER.match(member.lower())
        if match is None:
            return None
        return (None if match["index"] is None else int(match["index"])), None

    def shard_members(self, path: Path, index: int, count: int, key: str, **options: Any) -> dict[str, bytes]:
        """The 16-bit PNG as it is, after checking that it is one."""
        data = path.read_bytes()
        self.decode(data, key=key, num_frames=1)
        return {(f"{index}." if count > 1 else "") + "depth.png": data}

    def decode(self, payload: Any, *, key: str, num_frames: int, backend: str | None = None) -> torch.Tensor:
        """A 16-bit PNG (bytes or a path) → ``[1, h, w]`` float32 depth in [0, 1] (``max_depth_mm`` is 1)."""
        source = os.fspath(payload) if isinstance(payload, (str, os.PathLike)) else payload
        try:
            with Image.open(io.BytesIO(payload) if isinstance(payload, bytes) else payload) as image:
                mode = image.mode
                depth = np.asarray(image, dtype=np.float32)
        except (OSError, UnidentifiedImageError, ValueError) as err:
            raise DepthDecodeError(key, source, str(err)) from err
        if mode not in _DEPTH_MODES:
            raise DepthDecodeError(key, source, f"a {mode} image, not a 16-bit depth PNG")
        return torch.from_numpy(np.clip(depth / self.max_depth_mm, 0.0, 1.0)).unsqueeze(0)

    def make_transform(
        self, *, augment: bool = False, seed: int | None = None, normalize: bool = True
    ) -> Callable[[Any], torch.Tensor]:
        """Resize to the tower's input size, random horizontal flip (``augment``), normalise per channel; always
        float32 (16-bit depth does not fit uint8, so ``normalize=False`` is ignored)."""
        pre = self.tower_facts.preprocessing
        if pre.channels != self.channels:
            raise ValueError(
                f"DepthModality {self.name!r}: channels={self.channels} but its tower takes {pre.channels} channels"
            )
        return DepthTransform((pre.height, pre.width), pre.mean, pre.std, augment, seed)


class DepthTransform:
    """``[1, h', w']`` depth in [0, 1] → ``[c, h, w]`` normalised float32 (``c`` = ``len(mean)``)."""

    def __init__(
        self, size: tuple[int, int], mean: Sequence[float], std: Sequence[float], augment: bool, seed: int | None
    ) -> None:
        self.size, self.augment = size, augment
        self.mean = torch.tensor(mean, dtype=torch.float32)[:, None, None]
        self.std = torch.tensor(std, dtype=torch.float32)[:, None, None]
        self.generator = torch.Generator().manual_seed(seed if seed is not None else 0)

    def __call__(self, depth: torch.Tensor) -> torch.Tensor:
        resized = torch.nn.functional.interpolate(
            depth[None], size=self.size, mode="bilinear", align_corners=False, antialias=True
        )[0]
        if self.augment and torch.rand((), generator=self.generator) < 0.5:
            resized = resized.flip(-1)
        return ((resized - self.mean) / self.std).contiguous()
