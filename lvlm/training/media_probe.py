"""What the data side needs to know of the towers, read without building their weights.

Each tower factory is built once on the ``meta`` device (no memory, no initialisation cost) to read its
``tokens_per_image``/``tokens_per_frame`` and ``preprocessing``; the result becomes the data module's
``slots`` (see :class:`lvlm.data.media.MediaSlot`). A factory that cannot build on ``meta`` is built for
real on the CPU and dropped.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import Any

import torch

from lvlm.training.components import build

DEFAULT_TOKENS = {"image": "<image>", "video": "<video>"}  # the same defaults as VideoLLaVA.build


def placeholder_tokens(towers: Mapping[str, Any], tokens: Mapping[str, str] | None) -> dict[str, str]:
    """Placeholder token per modality: ``tokens[name]``, else ``<image>``/``<video>``/``<name>``."""
    tokens = dict(tokens or {})
    unknown = set(tokens) - set(towers)
    if unknown:
        raise ValueError(f"model.tokens names modalities without a tower: {sorted(unknown)}; towers: {sorted(towers)}")
    return {name: tokens.get(name, DEFAULT_TOKENS.get(name, f"<{name}>")) for name in towers}


def _probe(spec: Mapping[str, Any], where: str):
    try:
        # A loader that reads weights (load_languagebind_tower) copies them into meta tensors: a no-op.
        with torch.device("meta"), warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*meta parameter.*")
            return build(spec, where)
    except (NotImplementedError, RuntimeError):
        return build(spec, where)


def media_slots(
    towers: Mapping[str, Mapping[str, Any]], tokens: Mapping[str, str], image_mode: str = "crop"
) -> list[dict[str, Any]]:
    """One slot dict per tower, in tower order (a tower with ``num_frames`` or named ``video`` reads videos)."""
    from lvlm.models.modality_input import default_input_name

    slots = []
    for name, spec in towers.items():
        tower = _probe(spec, f"model.towers.{name}")
        is_video = name == "video" or getattr(tower, "num_frames", None) is not None
        preprocessing = tower.preprocessing
        slots.append(
            {
                "marker": tokens[name],
                "token": tokens[name],
                "batch_key": default_input_name(name),
                "kind": "video" if is_video else "image",
                "tokens_per_item": tower.tokens_per_frame if is_video else tower.tokens_per_image,
                "size": preprocessing.size,
                "mean": list(preprocessing.mean),
                "std": list(preprocessing.std),
                "image_mode": "crop" if is_video else image_mode,
            }
        )
    return slots
