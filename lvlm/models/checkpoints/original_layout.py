"""The original ``LanguageBind/Video-LLaVA-7B`` layout: ``config.json`` keys, LanguageBind towers, ``mm_projector``.

``config.json`` is a Llama config plus ``mm_*`` fields naming the towers by hub id or path; weights are
``model.image_tower.image_tower.*``, ``model.video_tower.video_tower.*`` (with ``temporal_attn``,
``temporal_embedding``, ``temporal_layer_norm1``), ``model.mm_projector.{0,2}.*``, ``model.*`` and
``lm_head.*``. Its text pipeline used the sentinel id -200; lvlm adds real ``<image>``/``<video>`` tokens
after the vocabulary instead (their embedding rows are never read: features replace them).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from transformers.initialization import no_init_weights

from lvlm.models.checkpoints.languagebind import build_languagebind_tower
from lvlm.models.checkpoints.parts import ModelParts
from lvlm.models.io.hub import CheckpointNotFoundError, resolve_checkpoint_dir
from lvlm.models.io.weights import read_state_dict
from lvlm.models.language_model import LanguageModel
from lvlm.models.projector import projector_from_kind
from lvlm.models.recorded_modality import recorded_modality
from lvlm.models.vision.pretrained_dirs import read_vision_config, tower_state

_MM_FIELDS = ("mm_image_tower", "mm_video_tower", "mm_projector_type", "mm_hidden_size", "mm_vision_select_layer")


def is_original_config(config: dict[str, Any]) -> bool:
    return any(field in config for field in _MM_FIELDS)


def read_original(
    directory: Path,
    config: dict[str, Any],
    torch_dtype: torch.dtype | None = None,
    image_tower: str | Path | None = None,
    video_tower: str | Path | None = None,
) -> ModelParts:
    """The original model's components; tower configs come from the tower directories it names."""
    state = read_state_dict(directory)
    layer = int(config.get("mm_vision_select_layer", -2))
    feature = config.get("mm_vision_select_feature", "patch")
    towers = {}
    specs = {
        "image": (image_tower or config.get("mm_image_tower")),
        "video": (video_tower or config.get("mm_video_tower")),
    }
    with no_init_weights():
        for modality, name in specs.items():
            if name is None:
                continue
            vision = _tower_vision_config(modality, name, directory)
            # The original ignores mm_vision_select_feature for video: every frame keeps its CLS.
            towers[modality] = build_languagebind_tower(
                modality, vision, select_layer=layer, select_feature=feature if modality == "image" else "cls_patch"
            )
        llm = LanguageModel(config=_llama_config(config))
        width = next(iter(towers.values())).hidden_size
        projector = projector_from_kind(config.get("mm_projector_type", "mlp2x_gelu"), width, llm.hidden_size)
    tokens = {"image": "<image>", "video": "<video>"}
    ids = llm.add_tokens([tokens[k] for k in towers])
    modalities = [recorded_modality(k, towers[k], tokens[k], i) for k, i in zip(towers, ids)]
    weights = _to_lvlm(state, towers, llm)
    return ModelParts(towers, projector, llm, modalities, "llava_v1", {}, weights, str(directory), torch_dtype)


def _to_lvlm(state, towers, llm) -> dict[str, torch.Tensor]:
    out: dict[str, torch.Tensor] = {}
    for modality, tower in towers.items():
        prefix = f"model.{modality}_tower.{modality}_tower."
        out.update({f"towers.{modality}.{k}": v for k, v in tower_state(state, prefix, tower.config.to_dict()).items()})
    for key, tensor in state.items():
        if key.startswith("model.mm_projector."):
            out["projector." + key[len("model.mm_projector.") :]] = tensor
        elif key.startswith(("model.image_tower.", "model.video_tower.")):
            continue
        elif key.startswith("model.") or key.startswith("lm_head."):
            out["llm.causal_lm." + key] = tensor
        else:
            out[key] = tensor
    # The original vocabulary has no placeholder rows: keep the rows lvlm appended (mean-initialised).
    own_state = llm.state_dict()
    for name in ("llm.causal_lm.model.embed_tokens.weight", "llm.causal_lm.lm_head.weight"):
        own = own_state.get(name.removeprefix("llm."))
        if name in out and own is not None and out[name].shape[0] < own.shape[0]:
            extra = out[name].mean(0, keepdim=True).expand(own.shape[0] - out[name].shape[0], -1)
            out[name] = torch.cat([out[name], extra.to(out[name].dtype)])
    return out


def _llama_config(config: dict[str, Any]) -> dict[str, Any]:
    llm = {k: v for k, v in config.items() if not k.startswith(("mm_", "image_", "video_", "tune_", "tokenizer_"))}
    llm["model_type"] = "llama"
    llm.pop("architectures", None)
    return llm


def _tower_vision_config(modality: str, name: str | Path, directory: Path) -> dict[str, Any]:
    """The tower's own ``config.json``: never guessed from the weights (a guessed head count loads silently wrong)."""
    try:
        return read_vision_config(resolve_checkpoint_dir(name))
    except (CheckpointNotFoundError, FileNotFoundError) as error:
        raise CheckpointNotFoundError(
            f"{directory}: the {modality} tower {name!r} that its config.json names (mm_{modality}_tower) cannot be "
            f"found ({error}). Supply a local copy of it: VideoLLaVA.from_pretrained(dir, {modality}_tower=DIR) "
            f"where DIR holds LanguageBind_{modality.title()}'s config.json, or put it in the Hugging Face cache "
            f"(`hf download {name}` on a machine with network)."
        ) from error
