"""CLIP-style towers over transformers' ``CLIPVisionModel``: plain CLIP, LanguageBind image, and the
LanguageBind video tower with per-layer temporal attention.

Features are the output of the selected layer (``select_layer=-2`` is ``hidden_states[-2]``: the
penultimate block, no final LayerNorm). Only the layers up to the selected one run.

Legend: ``n`` frames or images, ``k`` tokens, ``d`` width.
"""

from __future__ import annotations

from contextlib import nullcontext
from pathlib import Path
from typing import Any, Literal

import torch
from torch import nn
from transformers import CLIPVisionConfig, CLIPVisionModel
from transformers.initialization import no_init_weights
from transformers.models.clip.modeling_clip import CLIPEncoderLayer

from lvlm.models.io.weights import load_strict
from lvlm.models.vision import pretrained_dirs
from lvlm.models.vision.base import Preprocessing, VisionTower
from lvlm.models.vision.pixels import CLIP_MEAN, CLIP_STD
from lvlm.models.vision.temporal_layer import TemporalCLIPEncoderLayer, warn_frame_count

SelectFeature = Literal["patch", "cls_patch"]


def vision_config_from(
    config: CLIPVisionConfig | dict[str, Any], attn_implementation: str = "sdpa"
) -> CLIPVisionConfig:
    """A ``CLIPVisionConfig`` from a config or a plain dict; an absent ``hidden_act`` keeps CLIP's quick_gelu."""
    if isinstance(config, dict):
        keys = set(CLIPVisionConfig().to_dict())
        config = CLIPVisionConfig(**{k: v for k, v in config.items() if k in keys and k != "model_type"})
    config._attn_implementation = attn_implementation
    return config


class CLIPVisionTower(VisionTower):
    """A CLIP ViT (OpenAI CLIP, LanguageBind image, or the ``-hf`` port's towers).

    Args:
        config: the ``CLIPVisionConfig`` (or its dict). Its ``hidden_act`` is respected: LanguageBind
            configs say ``gelu``; a config without the field (the ``-hf`` port) means ``quick_gelu``.
        pretrained: instead of ``config``, a tower directory or hub id (a transformers CLIP or CLIP-vision
            directory, e.g. ``openai/clip-vit-large-patch14``): its config and weights are loaded.
        select_layer: which hidden state to return, in ``hidden_states`` numbering (0 = embeddings after
            ``pre_layrnorm``, ``i`` = output of block ``i-1``, negative counts from the end).
        select_feature: ``patch`` drops the CLS token, ``cls_patch`` keeps it.
        mean, std: normalisation the tower was trained with (CLIP's by default).
        frozen: no gradients and eval mode (the default; Video-LLaVA never trains its towers).
        attn_implementation: ``sdpa`` (default) or ``eager``.
    """

    def __init__(
        self,
        config: dict[str, Any] | None = None,
        select_layer: int = -2,
        select_feature: SelectFeature = "patch",
        mean: tuple[float, ...] = CLIP_MEAN,
        std: tuple[float, ...] = CLIP_STD,
        frozen: bool = True,
        attn_implementation: str = "sdpa",
        pretrained: str | None = None,
    ) -> None:
        super().__init__(frozen=frozen)
        if select_feature not in ("patch", "cls_patch"):
            raise ValueError(f"select_feature must be 'patch' or 'cls_patch', got {select_feature!r}")
        directory = None
        if pretrained is not None:
            if config is not None:
                raise ValueError(f"{type(self).__name__}: give `config` or `pretrained`, not both")
            directory, config = self.read_pretrained(pretrained)
        self.config = vision_config_from(config if config is not None else {}, attn_implementation)
        self.select_layer = select_layer
        self.select_feature = select_feature
        self.mean, self.std = tuple(mean), tuple(std)
        with no_init_weights() if directory is not None else nullcontext():
            self.vit = CLIPVisionModel(self.config)
        self.num_layers_to_run = self._layers_to_run(select_layer, self.config.num_hidden_layers)
        if directory is not None and not self._builds_more_layers:
            self.load_pretrained(directory)
        if frozen:
            self.freeze()

    _builds_more_layers = False  # a subclass that replaces layers after this __init__ loads weights itself

    @classmethod
    def read_pretrained(cls, pretrained: str | Path) -> tuple[Path, dict[str, Any]]:
        """``(directory, vision config)`` of a pretrained tower directory of this class's kind."""
        directory, config = pretrained_dirs.read_config(pretrained)
        return directory, pretrained_dirs.clip_vision_config(directory, config)

    def pretrained_state(self, directory: Path) -> dict[str, torch.Tensor]:
        """The ``vit.*`` weights of a pretrained directory."""
        return pretrained_dirs.clip_tower_state(directory)

    def load_pretrained(self, directory: Path) -> None:
        """Load a pretrained directory's weights; a tower built on the ``meta`` device (to read its shape
        cheaply) reads no file."""
        if next(self.parameters()).is_meta:
            return
        load_strict(self, self.pretrained_state(directory), str(directory))

    @staticmethod
    def _layers_to_run(select_layer: int, num_layers: int) -> int:
        index = select_layer if select_layer >= 0 else num_layers + 1 + select_layer
        if not 0 <= index <= num_layers:
            raise ValueError(f"select_layer={select_layer} is outside hidden_states of a {num_layers}-layer tower")
        return index

    @property
    def preprocessing(self) -> Preprocessing:
        return Preprocessing(size=self.config.image_size, mean=self.mean, std=self.std)

    @property
    def hidden_size(self) -> int:
        return self.config.hidden_size

    @property
    def num_patches(self) -> int:
        return (self.config.image_size // self.config.patch_size) ** 2

    @property
    def tokens_per_image(self) -> int:
        return self.num_patches + (1 if self.select_feature == "cls_patch" else 0)

    @property
    def block_classes(self) -> tuple[type[nn.Module], ...]:
        return (type(self.vit.encoder.layers[0]),)

    def to_config(self) -> dict[str, Any]:
        return {
            "config": self.config.to_diff_dict() | {"hidden_act": self.config.hidden_act},
            "select_layer": self.select_layer,
            "select_feature": self.select_feature,
            "mean": list(self.mean),
            "std": list(self.std),
        }

    def encode_frames(self, pixels: torch.Tensor, num_frames: int) -> torch.Tensor:
        """``[n, 3, s, s]`` → ``[n, k, d]``: embeddings, ``pre_layrnorm``, blocks up to the selected one."""
        hidden = self.vit.pre_layrnorm(self.vit.embeddings(pixels))
        layer_kwargs = self._layer_kwargs(num_frames)
        for layer in self.vit.encoder.layers[: self.num_layers_to_run]:
            hidden = layer(hidden, None, **layer_kwargs)
        return hidden if self.select_feature == "cls_patch" else hidden[:, 1:]

    def _layer_kwargs(self, num_frames: int) -> dict[str, Any]:
        return {}


class _LanguageBindDirectory:
    """Reads a standalone LanguageBind directory of the class's kind (``image`` or ``video``)."""

    languagebind_modality = "image"

    @classmethod
    def read_pretrained(cls, pretrained: str | Path) -> tuple[Path, dict[str, Any]]:
        directory, config = pretrained_dirs.read_config(pretrained)
        modality = pretrained_dirs.languagebind_modality(directory, config)
        if modality != cls.languagebind_modality:
            raise ValueError(f"{directory}: a LanguageBind {modality} tower, not a {cls.languagebind_modality} tower")
        return directory, pretrained_dirs.read_vision_config(directory)

    def pretrained_state(self, directory: Path) -> dict[str, torch.Tensor]:
        return pretrained_dirs.languagebind_tower_state(directory, pretrained_dirs.read_vision_config(directory))


class LanguageBindImageTower(_LanguageBindDirectory, CLIPVisionTower):
    """LanguageBind's image tower: a CLIP ViT-L/14 (exact GELU per its config), CLS dropped.

    ``pretrained`` names a standalone LanguageBind image directory (``LanguageBind/LanguageBind_Image``).
    """


class LanguageBindVideoTower(_LanguageBindDirectory, CLIPVisionTower):
    """LanguageBind's video tower, faithful to ``LanguageBind_Video_merge``.

    Every block adds a temporal embedding and runs temporal attention across frames before the spatial
    block (:class:`TemporalCLIPEncoderLayer`). Every frame's tokens are returned with CLS kept (257 per
    frame at ViT-L/14, 224 px). With ``temporal_attention=False`` it is a plain per-frame CLIP: what
    transformers' ``Video-LLaVA-7B-hf`` port computes.

    Args:
        num_frames: frames the temporal embedding was trained with; other counts work (interpolated,
            with one warning). With ``pretrained``, None reads it from the directory's config.
        temporal_attention: build and run the temporal parts (with ``pretrained``, None reads ``add_time_attn``).
        pretrained: a standalone LanguageBind video directory (``LanguageBind/LanguageBind_Video_merge``).
        Other arguments as :class:`CLIPVisionTower` (``select_feature`` defaults to ``cls_patch``).
    """

    languagebind_modality = "video"
    _builds_more_layers = True

    def __init__(
        self,
        config: dict[str, Any] | None = None,
        select_layer: int = -2,
        select_feature: SelectFeature = "cls_patch",
        num_frames: int | None = None,
        temporal_attention: bool | None = None,
        mean: tuple[float, ...] = CLIP_MEAN,
        std: tuple[float, ...] = CLIP_STD,
        frozen: bool = True,
        attn_implementation: str = "sdpa",
        pretrained: str | None = None,
    ) -> None:
        directory = None
        if pretrained is not None:
            if config is not None:
                raise ValueError("LanguageBindVideoTower: give `config` or `pretrained`, not both")
            directory, config = self.read_pretrained(pretrained)
        vision = config.to_dict() if isinstance(config, CLIPVisionConfig) else dict(config or {})
        num_frames = int(vision.get("num_frames", 8)) if num_frames is None else num_frames
        temporal_attention = (
            bool(vision.get("add_time_attn", True)) if temporal_attention is None else temporal_attention
        )
        with no_init_weights() if directory is not None else nullcontext():  # the weights are read below
            super().__init__(
                config, select_layer, select_feature, mean, std, frozen=False, attn_implementation=attn_implementation
            )
        self.num_frames = num_frames
        self.temporal_attention = temporal_attention
        self._warned_frames: set[int] = set()
        if temporal_attention:
            with no_init_weights() if directory is not None else nullcontext():
                self.vit.encoder.layers = nn.ModuleList(
                    TemporalCLIPEncoderLayer(self.config, num_frames) for _ in range(self.config.num_hidden_layers)
                )
        if directory is not None:
            self.load_pretrained(directory)
        if frozen:
            self.freeze()

    @property
    def block_classes(self) -> tuple[type[nn.Module], ...]:
        return (TemporalCLIPEncoderLayer,) if self.temporal_attention else (CLIPEncoderLayer,)

    def to_config(self) -> dict[str, Any]:
        return super().to_config() | {"num_frames": self.num_frames, "temporal_attention": self.temporal_attention}

    def idle_pixels(self, device: torch.device | str = "cpu") -> torch.Tensor:
        """One video of zeros, ``[1, t, c, h, w]`` with the tower's own frame count."""
        return torch.zeros(1, self.num_frames, *self.preprocessing.shape, device=device)

    def _layer_kwargs(self, num_frames: int) -> dict[str, Any]:
        if not self.temporal_attention:
            return {}
        if num_frames != self.num_frames and num_frames not in self._warned_frames:
            self._warned_frames.add(num_frames)
            warn_frame_count(num_frames, self.num_frames)
        return {"num_frames": num_frames}
