"""Standalone LanguageBind tower directories (``LanguageBind_Image``, ``LanguageBind_Video_merge``).

Such a directory holds a contrastive model's ``config.json`` (``vision_config`` inside) and weights
named ``vision_model.*`` (plus the text side, which a tower does not use). ``LanguageBind_Image`` may
store its encoder wrapped in LoRA (``vision_model.encoder.base_model.model.layers.N...`` with
``lora_A``/``lora_B``, spec §12); those adapters are merged here: ``W + B @ A * alpha / r``.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import torch
from transformers.initialization import no_init_weights

from lvlm.models.checkpoints.hub import resolve_checkpoint_dir
from lvlm.models.checkpoints.weights import load_strict, read_state_dict
from lvlm.models.vision.clip_tower import LanguageBindImageTower, LanguageBindVideoTower

LANGUAGEBIND_TYPES = {"LanguageBindImage", "LanguageBindVideo"}
_TEXT_SIDE = ("text_model.", "text_projection.", "visual_projection.", "logit_scale")


def read_vision_config(directory: Path) -> dict[str, Any]:
    config = json.loads((directory / "config.json").read_text())
    vision = config.get("vision_config", config)
    return dict(vision)


def merge_lora(state: dict[str, torch.Tensor], alpha: float, rank: int) -> dict[str, torch.Tensor]:
    """Fold LoRA adapters into their base weights and strip peft's wrapper names."""
    state = {re.sub(r"\.base_model\.model\.", ".", k): v for k, v in state.items()}
    state = {k.replace(".base_layer.", "."): v for k, v in state.items()}
    adapters: dict[tuple[str, str], torch.Tensor] = {}  # (layer, "A"|"B") -> weight, found in one pass
    for key, tensor in state.items():
        for part in ("A", "B"):
            if f".lora_{part}." in key and key.endswith("weight"):
                adapters[(key.split(f".lora_{part}.")[0], part)] = tensor
    merged = {}
    for key, tensor in state.items():
        if ".lora_A." in key or ".lora_B." in key:
            continue
        base = key.rsplit(".", 1)[0]
        lora_a, lora_b = adapters.get((base, "A")), adapters.get((base, "B"))
        if key.endswith(".weight") and lora_a is not None and lora_b is not None:
            tensor = tensor + (lora_b.float() @ lora_a.float()).to(tensor.dtype) * (alpha / rank)
        merged[key] = tensor
    return merged


def tower_state(state: dict[str, torch.Tensor], prefix: str, vision: dict[str, Any]) -> dict[str, torch.Tensor]:
    """The tower's weights (``vit.*`` keys) out of a LanguageBind or Video-LLaVA state dict."""
    picked = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
    if any(".lora_A." in k for k in picked):
        picked = merge_lora(picked, float(vision.get("lora_alpha", 16)), int(vision.get("lora_r", 16)))
    return {f"vit.{k}": v for k, v in picked.items()}


def load_languagebind_tower(path_or_hub_id: str | Path, kind: str | None = None, **tower_kwargs: Any):
    """A LanguageBind image or video tower, weights included, from its own directory or hub id.

    Args:
        path_or_hub_id: e.g. ``LanguageBind/LanguageBind_Video_merge`` or a local copy of it.
        kind: ``image`` or ``video``; read from the config's ``model_type`` when not given.
        tower_kwargs: ``select_layer``, ``select_feature``, ... for the tower.
    """
    directory = resolve_checkpoint_dir(path_or_hub_id)
    config = json.loads((directory / "config.json").read_text())
    kind = kind or {"LanguageBindImage": "image", "LanguageBindVideo": "video"}.get(config.get("model_type", ""))
    if kind not in ("image", "video"):
        raise ValueError(
            f"{directory}: not a LanguageBind image/video directory (model_type={config.get('model_type')!r})"
        )
    vision = read_vision_config(directory)
    with no_init_weights():
        tower = build_languagebind_tower(kind, vision, **tower_kwargs)
    state = read_state_dict(directory)
    unused = [k for k in state if k.startswith(_TEXT_SIDE)]
    state = {k: v for k, v in state.items() if k not in set(unused)}
    load_strict(tower, tower_state(state, "vision_model.", vision), str(directory))
    return tower


def build_languagebind_tower(kind: str, vision: dict[str, Any], **tower_kwargs: Any):
    """An empty LanguageBind tower of ``kind`` from a LanguageBind ``vision_config`` dict."""
    if kind == "image":
        return LanguageBindImageTower(vision, **tower_kwargs)
    return LanguageBindVideoTower(
        vision,
        num_frames=int(vision.get("num_frames", 8)),
        temporal_attention=bool(vision.get("add_time_attn", True)),
        **tower_kwargs,
    )
