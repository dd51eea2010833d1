"""Any timm ViT as a tower: MAE (``vit_large_patch16_224.mae``, the paper's ablation) or another.

The intermediate layer is taken through timm's own ``forward_intermediates`` API (no monkey-patching),
and timm's pretrained config supplies the input size and normalisation.

Legend: ``n`` images or frames, ``k`` tokens, ``d`` width.
"""

from __future__ import annotations

from typing import Any, Literal

import timm
import torch
from torch import nn

from lvlm.models.vision.base import Preprocessing, VisionTower


class TimmVisionTower(VisionTower):
    """A timm Vision Transformer.

    Args:
        model_name: a timm model name, e.g. ``vit_large_patch16_224.mae``.
        pretrained: load timm's weights (needs them in the local cache or network); tests build with False.
        select_layer: hidden state to return in ``hidden_states`` numbering (-2 = output of the
            penultimate block), taken before the final norm like the CLIP towers.
        select_feature: ``patch`` drops prefix tokens (CLS, registers), ``cls_patch`` keeps them.
        model_kwargs: extra arguments for ``timm.create_model`` (e.g. a small ``depth`` in tests).
        frozen: no gradients and eval mode.
    """

    def __init__(
        self,
        model_name: str = "vit_large_patch16_224.mae",
        pretrained: bool = False,
        select_layer: int = -2,
        select_feature: Literal["patch", "cls_patch"] = "patch",
        model_kwargs: dict[str, Any] | None = None,
        frozen: bool = True,
    ) -> None:
        super().__init__(frozen=frozen)
        self.model_name = model_name
        self.model_kwargs = dict(model_kwargs or {})
        self.select_layer = select_layer
        self.select_feature = select_feature
        self.vit = timm.create_model(model_name, pretrained=pretrained, num_classes=0, **self.model_kwargs)
        if not hasattr(self.vit, "forward_intermediates"):
            raise TypeError(f"timm model {model_name!r} has no forward_intermediates(): use a ViT-style model")
        depth = len(self.vit.blocks)
        index = select_layer if select_layer >= 0 else depth + 1 + select_layer
        if not 1 <= index <= depth:
            raise ValueError(f"select_layer={select_layer} must pick a block output of a {depth}-block timm ViT")
        self.block_index = index - 1
        if frozen:
            self.freeze()

    @property
    def preprocessing(self) -> Preprocessing:
        cfg = timm.data.resolve_model_data_config(self.vit)
        size = self.vit.patch_embed.img_size  # the built model's size, which model_kwargs may have changed
        mean, std, channels = tuple(cfg["mean"]), tuple(cfg["std"]), self.vit.patch_embed.proj.in_channels
        if len(mean) != channels:  # timm's config keeps RGB statistics for a model built with other in_chans
            mean, std = (sum(mean) / len(mean),) * channels, (sum(std) / len(std),) * channels
        return Preprocessing(size=tuple(size), mean=mean, std=std)

    @property
    def hidden_size(self) -> int:
        return self.vit.embed_dim

    @property
    def tokens_per_image(self) -> int:
        patches = self.vit.patch_embed.num_patches
        return patches + (self.vit.num_prefix_tokens if self.select_feature == "cls_patch" else 0)

    @property
    def block_classes(self) -> tuple[type[nn.Module], ...]:
        return (type(self.vit.blocks[0]),)

    def to_config(self) -> dict[str, Any]:
        return {
            "model_name": self.model_name,
            "select_layer": self.select_layer,
            "select_feature": self.select_feature,
            "model_kwargs": self.model_kwargs,
        }

    def encode_frames(self, pixels: torch.Tensor, num_frames: int) -> torch.Tensor:
        """``[n, c, h, w]`` → ``[n, k, d]`` from the selected block (blocks after it do not run)."""
        out = self.vit.forward_intermediates(
            pixels,
            indices=[self.block_index],
            return_prefix_tokens=True,
            norm=False,
            stop_early=True,
            output_fmt="NLC",
            intermediates_only=True,
        )
        patches, prefix = out[0]
        return torch.cat([prefix, patches], dim=1) if self.select_feature == "cls_patch" else patches
