"""CLIP image towers from transformers CLIP directories (``openai/clip-vit-large-patch14`` and the like).

A ``CLIPModel`` directory holds ``vision_config`` and weights named ``vision_model.*`` next to the text
side; a ``CLIPVisionModel`` directory holds a vision config and the vision weights alone (with or without
the ``vision_model.`` prefix, depending on the transformers version that wrote it).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from transformers.initialization import no_init_weights

from lvlm.models.checkpoints.hub import resolve_checkpoint_dir
from lvlm.models.checkpoints.weights import load_strict, read_state_dict
from lvlm.models.vision.clip_tower import CLIPVisionTower

_TEXT_SIDE = ("text_model.", "text_projection.", "visual_projection.", "logit_scale")


def load_clip_tower(path_or_hub_id: str | Path, **tower_kwargs: Any) -> CLIPVisionTower:
    """A :class:`CLIPVisionTower` with its weights, from a CLIP or CLIP-vision directory or hub id.

    Args:
        path_or_hub_id: e.g. ``openai/clip-vit-large-patch14`` or a local copy of it.
        tower_kwargs: ``select_layer``, ``select_feature``, ``mean``, ``std``, ... for the tower.
    """
    directory = resolve_checkpoint_dir(path_or_hub_id)
    config = json.loads((directory / "config.json").read_text())
    if config.get("model_type") not in ("clip", "clip_vision_model"):
        raise ValueError(f"{directory}: not a CLIP directory (model_type={config.get('model_type')!r})")
    vision = config.get("vision_config", config)
    with no_init_weights():
        tower = CLIPVisionTower(vision, **tower_kwargs)
    state = {k: v for k, v in read_state_dict(directory).items() if not k.startswith(_TEXT_SIDE)}
    state = {k.removeprefix("vision_model."): v for k, v in state.items()}
    load_strict(tower, {f"vit.{k}": v for k, v in state.items()}, str(directory))
    return tower
