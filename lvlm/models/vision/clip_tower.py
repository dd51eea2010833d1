"""CLIP-style towers over transformers' ``CLIPVisionModel``: plain CLIP, LanguageBind image, and the
LanguageBind video tower with per-layer temporal attention.

Features are the output of the selected layer (``select_layer=-2`` is ``hidden_states[-2]``: the
penultimate block, no final LayerNorm). Only the layers up to the selected one run.

Legend: ``n`` frames or images, ``k`` tokens, ``d`` width.
"""

from __future__ import annotations

from typing import Any, Literal

import torch
from torch import nn
from transformers import CLIPVisionConfig, CLIPVisionModel
from transformers.models.clip.modeling_clip import CLIPEncoderLayer

from lvlm.models.vision.base import CLIP_MEAN, CLIP_STD, Preprocessing, VisionTower
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
        select_layer: which hidden state to return, in ``hidden_states`` numbering (0 = embeddings after
            ``pre_layrnorm``, ``i`` = output of block ``i-1``, negative counts from the end).
        select_feature: ``patch`` drops the CLS token, ``cls_patch`` keeps it.
        mean, std: normalisation the tower was trained with (CLIP's by default).
        frozen: no gradients and eval mode (the default; Video-LLaVA never trains its towers).
        attn_implementation: ``sdpa`` (default) or ``eager``.
    """

    registry_name = "clip"

    def __init__(
        self,
        config: CLIPVisionConfig | dict[str, Any] | None = None,
        select_layer: int = -2,
        select_feature: SelectFeature = "patch",
        mean: tuple[float, float, float] = CLIP_MEAN,
        std: tuple[float, float, float] = CLIP_STD,
        frozen: bool = True,
        attn_implementation: str = "sdpa",
    ) -> None:
        super().__init__(frozen=frozen)
        if select_feature not in ("patch", "cls_patch"):
            raise ValueError(f"select_feature must be 'patch' or 'cls_patch', got {select_feature!r}")
        self.config = vision_config_from(config if config is not None else {}, attn_implementation)
        self.select_layer = select_layer
        self.select_feature = select_feature
        self.mean, self.std = tuple(mean), tuple(std)
        self.vit = CLIPVisionModel(self.config)
        self.num_layers_to_run = self._layers_to_run(select_layer, self.config.num_hidden_layers)
        if frozen:
            self.freeze()

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


class LanguageBindImageTower(CLIPVisionTower):
    """LanguageBind's image tower: a CLIP ViT-L/14 (exact GELU per its config), CLS dropped."""

    registry_name = "languagebind_image"


class LanguageBindVideoTower(CLIPVisionTower):
    """LanguageBind's video tower, faithful to ``LanguageBind_Video_merge``.

    Every block adds a temporal embedding and runs temporal attention across frames before the spatial
    block (:class:`TemporalCLIPEncoderLayer`). Every frame's tokens are returned with CLS kept (257 per
    frame at ViT-L/14, 224 px). With ``temporal_attention=False`` it is a plain per-frame CLIP: what
    transformers' ``Video-LLaVA-7B-hf`` port computes.

    Args:
        num_frames: frames the temporal embedding was trained with; other counts work (interpolated,
            with one warning).
        temporal_attention: build and run the temporal parts.
        Other arguments as :class:`CLIPVisionTower` (``select_feature`` defaults to ``cls_patch``).
    """

    registry_name = "languagebind_video"

    def __init__(
        self,
        config: CLIPVisionConfig | dict[str, Any] | None = None,
        select_layer: int = -2,
        select_feature: SelectFeature = "cls_patch",
        num_frames: int = 8,
        temporal_attention: bool = True,
        mean: tuple[float, float, float] = CLIP_MEAN,
        std: tuple[float, float, float] = CLIP_STD,
        frozen: bool = True,
        attn_implementation: str = "sdpa",
    ) -> None:
        super().__init__(
            config, select_layer, select_feature, mean, std, frozen=False, attn_implementation=attn_implementation
        )
        self.num_frames = num_frames
        self.temporal_attention = temporal_attention
        self._warned_frames: set[int] = set()
        if temporal_attention:
            self.vit.encoder.layers = nn.ModuleList(
                TemporalCLIPEncoderLayer(self.config, num_frames) for _ in range(self.config.num_hidden_layers)
            )
        if frozen:
            self.freeze()

    @property
    def block_classes(self) -> tuple[type[nn.Module], ...]:
        return (TemporalCLIPEncoderLayer,) if self.temporal_attention else (CLIPEncoderLayer,)

    def to_config(self) -> dict[str, Any]:
        return super().to_config() | {"num_frames": self.num_frames, "temporal_attention": self.temporal_attention}

    def _layer_kwargs(self, num_frames: int) -> dict[str, Any]:
        if not self.temporal_attention:
            return {}
        if num_frames != self.num_frames and num_frames not in self._warned_frames:
            self._warned_frames.add(num_frames)
            warn_frame_count(num_frames, self.num_frames)
        return {"num_frames": num_frames}
