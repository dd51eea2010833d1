"""Reading a tower's own pretrained directory: transformers CLIP dirs and standalone LanguageBind dirs.

- A ``CLIPModel`` directory (``openai/clip-vit-large-patch14``) holds ``vision_config`` and weights named
  ``vision_model.*`` next to the text side; a ``CLIPVisionModel`` directory holds the vision config and weights
  alone (with or without the ``vision_model.`` prefix, depending on the transformers version that wrote it).
- A LanguageBind directory (``LanguageBind_Image``, ``LanguageBind_Video_merge``) holds a contrastive model's
  ``config.json`` (``vision_config`` inside) and ``vision_model.*`` weights; ``LanguageBind_Image`` may store
  its encoder wrapped in LoRA (``...encoder.base_model.model.layers.N...`` with ``lora_A``/``lora_B``),
  merged here: ``W + B @ A * alpha / r``.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import torch

from lvlm.models.io.hub import resolve_checkpoint_dir
from lvlm.models.io.weights import read_state_dict

LANGUAGEBIND_TYPES = {"LanguageBindImage": "image", "LanguageBindVideo": "video"}
CLIP_TYPES = ("clip", "clip_vision_model")
TEXT_SIDE = ("text_model.", "text_projection.", "visual_projection.", "logit_scale")


def read_config(path_or_hub_id: str | Path) -> tuple[Path, dict[str, Any]]:
    """The resolved directory and its ``config.json``."""
    directory = resolve_checkpoint_dir(path_or_hub_id)
    config_path = directory / "config.json"
    if not config_path.is_file():
        raise FileNotFoundError(f"{directory}: no config.json; not a tower directory")
    return directory, json.loads(config_path.read_text())


def read_vision_config(directory: Path) -> dict[str, Any]:
    config = json.loads((directory / "config.json").read_text())
    return dict(config.get("vision_config", config))


def clip_vision_config(directory: Path, config: dict[str, Any]) -> dict[str, Any]:
    """The vision config of a CLIP or CLIP-vision directory; an error names any other kind."""
    if config.get("model_type") not in CLIP_TYPES:
        raise ValueError(f"{directory}: not a CLIP directory (model_type={config.get('model_type')!r})")
    return dict(config.get("vision_config", config))


def clip_tower_state(directory: Path) -> dict[str, torch.Tensor]:
    """``vit.*`` weights of a CLIP or CLIP-vision directory (text side dropped)."""
    state = {k: v for k, v in read_state_dict(directory).items() if not k.startswith(TEXT_SIDE)}
    return {f"vit.{k.removeprefix('vision_model.')}": v for k, v in state.items()}


def languagebind_modality(directory: Path, config: dict[str, Any]) -> str:
    """``image`` or ``video`` from a LanguageBind directory's ``model_type``; an error names any other kind."""
    modality = LANGUAGEBIND_TYPES.get(config.get("model_type", ""))
    if modality is None:
        raise ValueError(
            f"{directory}: not a LanguageBind image/video directory (model_type={config.get('model_type')!r})"
        )
    return modality


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


def languagebind_tower_state(directory: Path, vision: dict[str, Any]) -> dict[str, torch.Tensor]:
    """``vit.*`` weights of a standalone LanguageBind directory (text side dropped, LoRA merged)."""
    state = {k: v for k, v in read_state_dict(directory).items() if not k.startswith(TEXT_SIDE)}
    return tower_state(state, "vision_model.", vision)
