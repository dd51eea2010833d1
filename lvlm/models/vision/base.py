"""The vision tower interface every encoder implements.

A tower turns pixels into a sequence of feature vectors per item. It declares what the data side needs
to prepare its input (``preprocessing``) and to lay out placeholders in the text (``tokens_per_image``,
``tokens_per_frame``), and which block classes a sharding strategy should wrap.

Legend: ``n`` items, ``t`` frames, ``c`` channels, ``h``/``w`` pixels, ``k`` tokens, ``d`` width.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn

from lvlm.core.registry import recorded_class
from lvlm.models.vision.pixels import CLIP_MEAN, CLIP_STD, normalize_pixels


@dataclass(frozen=True)
class Preprocessing:
    """What a tower expects of its pixels: input size and per-channel normalisation of [0, 1] values.

    Attributes:
        size: side ``s`` of a square input, or ``(h, w)`` (a square ``(s, s)`` is stored as ``s``).
        mean: per-channel mean; its length is the channel count ``c`` (3 for RGB, 1 for a depth map).
        std: per-channel standard deviation, as many values as ``mean``, all positive.

    Values are checked and stored as plain tuples (a list from a JSON file becomes a tuple), so a plugin's
    tower may declare any channel count and any aspect ratio; the transforms, the tower's own normalisation of
    uint8 pixels and its idle input all follow ``channels``, ``height`` and ``width``.
    """

    size: int | tuple[int, int]
    mean: tuple[float, ...] = CLIP_MEAN
    std: tuple[float, ...] = CLIP_STD

    def __post_init__(self) -> None:
        size = self.size if isinstance(self.size, int) else tuple(int(v) for v in self.size)
        mean, std = tuple(float(v) for v in self.mean), tuple(float(v) for v in self.std)
        sides = (size,) if isinstance(size, int) else size
        if len(sides) not in (1, 2) or any(side <= 0 for side in sides):
            raise ValueError(f"Preprocessing: size is a positive side or (height, width), got {self.size!r}")
        if not mean or len(mean) != len(std) or any(v <= 0 for v in std):
            raise ValueError(
                f"Preprocessing: mean and std need one value per channel (std positive), got {mean} and {std}"
            )
        object.__setattr__(self, "size", sides[0] if len(set(sides)) == 1 else size)
        object.__setattr__(self, "mean", mean)
        object.__setattr__(self, "std", std)

    @property
    def channels(self) -> int:
        """Input channels ``c``: the length of ``mean``."""
        return len(self.mean)

    @property
    def height(self) -> int:
        return self.size if isinstance(self.size, int) else self.size[0]

    @property
    def width(self) -> int:
        return self.size if isinstance(self.size, int) else self.size[1]

    @property
    def shape(self) -> tuple[int, int, int]:
        """``(c, h, w)`` of one image (one video frame)."""
        return self.channels, self.height, self.width

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class VisionTower(nn.Module, ABC):
    """Base of all towers: frozen and in eval mode by default.

    Subclasses implement :meth:`encode_frames` and :meth:`to_config`; :meth:`forward` handles the image
    and video layouts. A saved model records a tower by class path and ``to_config()``; loading resolves the
    path only to a ``VisionTower`` subclass of lvlm or of a registered plugin (:mod:`lvlm.core.registry`).
    """

    @classmethod
    def component_class(cls) -> type[VisionTower]:
        """The class a saved model records (an FSDP2 wrapper class records the tower class it wraps)."""
        return recorded_class(cls)

    def __init__(self, frozen: bool = True) -> None:
        super().__init__()
        self.frozen = frozen

    # --- declarations -------------------------------------------------------------------------------
    @property
    @abstractmethod
    def preprocessing(self) -> Preprocessing:
        """Input size and normalisation this tower was trained with."""

    @property
    @abstractmethod
    def hidden_size(self) -> int:
        """Width ``d`` of the returned features."""

    @property
    @abstractmethod
    def tokens_per_image(self) -> int:
        """Feature vectors returned for one image."""

    @property
    def tokens_per_frame(self) -> int:
        """Feature vectors returned for one video frame (a video yields ``t * tokens_per_frame``)."""
        return self.tokens_per_image

    @property
    @abstractmethod
    def block_classes(self) -> tuple[type[nn.Module], ...]:
        """Transformer block classes: the units a sharding or checkpointing policy wraps."""

    @abstractmethod
    def to_config(self) -> dict[str, Any]:
        """Plain-JSON keyword arguments that rebuild this tower (without weights) via ``cls(**config)``."""

    # --- computation --------------------------------------------------------------------------------
    @abstractmethod
    def encode_frames(self, pixels: torch.Tensor, num_frames: int) -> torch.Tensor:
        """Encode ``[(n t), c, h, w]`` pixels whose consecutive ``num_frames`` rows form one item.

        Returns:
            ``[(n t), k, d]`` features, ``k`` = ``tokens_per_frame`` (``tokens_per_image`` when t is 1).
        """

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        """Images ``[n, c, h, w]`` or videos ``[n, t, c, h, w]`` → features ``[n, k, d]``.

        A video's ``k`` is ``t * tokens_per_frame``: every frame's tokens, frames in time order. Pixels are
        normalised floats, or uint8 (0-255, what ``LVLMDataModule`` sends) that this tower normalises with its
        own ``preprocessing`` mean and std, on the pixels' device.
        """
        if pixels.dtype == torch.uint8:
            pixels = normalize_pixels(pixels, *self._pixel_stats(pixels.device))
        if pixels.dim() == 4:
            return self._encode(pixels, num_frames=1)
        if pixels.dim() != 5:
            raise ValueError(f"{type(self).__name__} takes [n, c, h, w] or [n, t, c, h, w], got {list(pixels.shape)}")
        n, t = pixels.shape[:2]
        features = self._encode(pixels.flatten(0, 1), num_frames=t)
        return features.reshape(n, t * features.shape[1], features.shape[2])

    def idle_pixels(self, device: torch.device | str = "cpu") -> torch.Tensor:
        """One item of zeros in this tower's input layout, ``[1, c, h, w]`` from its ``preprocessing``.

        A sharded run encodes it (times 0) on a rank whose batch has none of this tower's modality, so every
        rank runs the same collectives. A tower taking a video layout overrides it.
        """
        return torch.zeros(1, *self.preprocessing.shape, device=device)

    def _pixel_stats(self, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """``preprocessing`` mean and std as float32 ``[c]`` tensors on ``device``, made once per device: no
        host-to-device copy (and no synchronisation) at every forward."""
        cache = self.__dict__.setdefault("_pixel_stats_cache", {})
        if device not in cache:
            pre = self.preprocessing
            cache[device] = tuple(torch.tensor(v, dtype=torch.float32, device=device) for v in (pre.mean, pre.std))
        return cache[device]

    def _encode(self, pixels: torch.Tensor, num_frames: int) -> torch.Tensor:
        pixels = pixels.to(self.dtype)
        if self.frozen and not any(p.requires_grad for p in self.parameters()):
            with torch.no_grad():
                return self.encode_frames(pixels, num_frames)
        return self.encode_frames(pixels, num_frames)

    @property
    def dtype(self) -> torch.dtype:
        return next(self.parameters()).dtype

    # --- frozen by default --------------------------------------------------------------------------
    def freeze(self) -> VisionTower:
        """Stop gradients and keep eval mode (no dropout, no patch dropout) through ``train()`` calls."""
        self.frozen = True
        self.requires_grad_(False)
        return self.eval()

    def unfreeze(self) -> VisionTower:
        self.frozen = False
        self.requires_grad_(True)
        return self

    def train(self, mode: bool = True) -> VisionTower:
        # A frozen tower stays in eval mode even when the LightningModule switches to training: the
        # original only set requires_grad_(False), so its towers ran in train mode under HF Trainer.
        return super().train(mode and not self.frozen)
