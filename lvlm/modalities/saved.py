"""The modalities of a loaded model, rebuilt from what it recorded: one derivation for training and serving.

A model saved by lvlm records each modality's ``{class_path, init_args}`` (``modality_specs``); the class path
is resolved only to a :class:`~lvlm.modalities.Modality` subclass of lvlm or of a registered plugin (it was read
from a file), and the modality takes its token counts and preprocessing from the loaded tower. A layout that
records none (transformers' ``video_llava``, the original's) gets the built-in modality of each tower's name,
images padded to square as the original's fine-tuning and evaluation do.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from torch import nn

from lvlm.core.errors import UserError
from lvlm.core.registry import resolve_component
from lvlm.modalities.base import Modality
from lvlm.modalities.catalog import BUILT_IN

# The original checkpoints were fine-tuned and evaluated with images padded to square.
UNRECORDED_INIT_ARGS: dict[str, dict[str, Any]] = {"image": {"image_mode": "pad"}}


def saved_modalities(model: nn.Module, where: str) -> dict[str, Modality]:
    """One modality per modality of a loaded ``VideoLLaVA``, with the facts of its loaded tower.

    Args:
        model: the loaded model (its ``modalities``, ``towers`` and ``modality_specs``).
        where: the file the specs were read from, for errors (``ckpt/lvlm_config.json``).

    Raises:
        UnsafeInputError: a recorded class path outside lvlm and its registered plugins, or not a modality.
        UserError: a layout without specs has a modality lvlm has no built-in class for.
    """
    specs: Mapping[str, Any] = getattr(model, "modality_specs", None) or {}
    built: dict[str, Modality] = {}
    for name, recorded in model.modalities.items():
        tower = model.towers[name]
        spec = specs.get(name)
        if spec is not None:
            key = f"{where}: modality_specs.{name}.class_path"
            cls = resolve_component(spec.get("class_path") if isinstance(spec, Mapping) else spec, Modality, key)
            init_args = dict(spec.get("init_args") or {})
        elif name in BUILT_IN:
            cls, init_args = BUILT_IN[name], dict(UNRECORDED_INIT_ARGS.get(name, {}))
        else:
            raise UserError(f"{where}: modality {name!r} records no class path and is not built in")
        if init_args.get("token") is None:
            init_args["token"] = recorded.token
        modality = cls(tower=_loaded(tower), **init_args).bind(name)
        modality.use_tower_facts(tower)
        built[name] = modality
    return built


class _LoadedTower:
    """The tower factory of a loaded model's modality: returns the loaded tower. Pickled (to data or serving worker
    processes, which need the modality's decoding, never its weights) it leaves the tower behind."""

    def __init__(self, tower: nn.Module | None) -> None:
        self.tower = tower

    def __call__(self) -> nn.Module:
        if self.tower is None:
            raise RuntimeError("this modality's tower stayed with the loaded model (not sent to worker processes)")
        return self.tower

    def __getstate__(self) -> dict:
        return {"tower": None}


def _loaded(tower: nn.Module) -> _LoadedTower:
    return _LoadedTower(tower)
