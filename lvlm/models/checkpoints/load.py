"""``VideoLLaVA.from_pretrained``: detect a directory's layout from its files and read its components."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from lvlm.models.checkpoints.hf_layout import read_hf
from lvlm.models.checkpoints.languagebind import LANGUAGEBIND_TYPES, load_languagebind_tower
from lvlm.models.checkpoints.lvlm_layout import CONFIG_NAME, read_lvlm
from lvlm.models.checkpoints.original_layout import is_original_config, read_original
from lvlm.models.checkpoints.parts import ModelParts
from lvlm.models.io.hub import resolve_checkpoint_dir
from lvlm.models.language_model import LanguageModel, _dtype
from lvlm.models.projector import MLPGeluProjector
from lvlm.models.recorded_modality import recorded_modality


def detect_layout(directory: Path) -> str:
    """``lvlm``, ``hf``, ``original``, ``languagebind`` (a tower) or ``causal_lm`` (a plain LLM)."""
    if (directory / CONFIG_NAME).is_file():
        return "lvlm"
    config_path = directory / "config.json"
    if not config_path.is_file():
        raise FileNotFoundError(f"{directory}: no {CONFIG_NAME} or config.json; not a checkpoint directory")
    config = json.loads(config_path.read_text())
    if config.get("model_type") == "video_llava":
        return "hf"
    if is_original_config(config):
        return "original"
    if config.get("model_type") in LANGUAGEBIND_TYPES:
        return "languagebind"
    return "causal_lm"


def read_checkpoint(
    path_or_hub_id: str | Path,
    torch_dtype: str | torch.dtype | None = None,
    image_tower: Any = None,
    video_tower: Any = None,
    tokenizer: Any = None,
    attn_implementation: str = "sdpa",
) -> ModelParts:
    """The components of a checkpoint in any supported layout.

    Args:
        path_or_hub_id: a local directory, or a hub id found in the local cache (or downloaded when online).
        torch_dtype: cast the loaded model to this dtype.
        image_tower, video_tower: for the original layout, local tower directories overriding the hub names in
            its config; for a plain LLM directory, the towers to assemble (directories or tower modules).
        tokenizer: for a plain LLM directory, a tokenizer to grow with the placeholder tokens.
        attn_implementation: for a plain LLM directory, the LLM's attention.
    """
    directory = resolve_checkpoint_dir(path_or_hub_id)
    dtype = _dtype(torch_dtype)
    layout = detect_layout(directory)
    if layout == "lvlm":
        return read_lvlm(directory, dtype)
    config = json.loads((directory / "config.json").read_text())
    if layout == "hf":
        return read_hf(directory, config, dtype)
    if layout == "original":
        return read_original(directory, config, dtype, image_tower=image_tower, video_tower=video_tower)
    if layout == "languagebind":
        raise ValueError(
            f"{directory} is a standalone LanguageBind tower ({config['model_type']}), not a whole model. Load it "
            f"with LanguageBindImageTower(pretrained=DIR) / LanguageBindVideoTower(pretrained=DIR), or pass it as "
            f"image_tower=/video_tower= together with an LLM directory."
        )
    return _around_plain_llm(directory, config, dtype, image_tower, video_tower, tokenizer, attn_implementation)


def _around_plain_llm(directory, config, dtype, image_tower, video_tower, tokenizer, attn_implementation):
    towers = {
        name: _tower(name, spec) for name, spec in (("image", image_tower), ("video", video_tower)) if spec is not None
    }
    if not towers:
        raise ValueError(
            f"{directory} is a plain causal LM ({config.get('model_type')}). To build a VideoLLaVA around it, pass the "
            f"towers: VideoLLaVA.from_pretrained(dir, image_tower=..., video_tower=...)."
        )
    llm = LanguageModel(pretrained=str(directory), torch_dtype=dtype, attn_implementation=attn_implementation)
    widths = {tower.hidden_size for tower in towers.values()}
    if len(widths) > 1:
        raise ValueError(f"one shared projector needs towers of one width, got {sorted(widths)}")
    projector = MLPGeluProjector(widths.pop(), llm.hidden_size)
    tokens = [f"<{name}>" for name in towers]
    ids = llm.add_tokens(tokens, tokenizer)
    modalities = [recorded_modality(n, towers[n], t, i) for n, t, i in zip(towers, tokens, ids)]
    return ModelParts(towers, projector, llm, modalities, "vicuna_v1", {}, None, str(directory), dtype)


def _tower(modality: str, spec: Any):
    if isinstance(spec, torch.nn.Module):
        return spec
    return load_languagebind_tower(spec, modality=modality)
