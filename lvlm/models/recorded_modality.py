"""A loaded model's modalities, rebuilt from what its checkpoint records, around the towers already loaded.

An lvlm checkpoint records each modality twice over: the model's binding (``modalities``: name, placeholder,
its id, batch key) and, when the model was trained by lvlm, the component itself (``modality_specs``:
``{class_path, init_args}``). The class path resolves only to a :class:`Modality` subclass of lvlm or of a
registered plugin (it was read from a file). A layout that records no component (transformers' ``video_llava``,
the original's, a model built from bare towers) gets a :class:`TowerModality`: the model needs no more, and
:func:`lvlm.modalities.saved.saved_modalities` replaces it with the built-in modality of its name for inference.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from torch import nn

from lvlm.core.errors import UserError
from lvlm.core.registry import resolve_component
from lvlm.models.modality import Modality
from lvlm.models.vision.base import VisionTower


class TowerModality(Modality):
    """A modality known by its tower and placeholder only (no decoding): what the model itself needs."""

    def decode(self, payload: Any, *, key: str, num_frames: int, backend: str | None = None) -> Any:
        raise UserError(f"modality {self.name!r} was given as a bare tower: give a Modality class to decode its media")

    def make_transform(self, *, augment: bool = False, seed: int | None = None, normalize: bool = True) -> Callable:
        raise UserError(f"modality {self.name!r} was given as a bare tower: give a Modality class to transform it")


class BuiltTower:
    """The tower factory of a modality whose tower is already built (a loaded model): returns that tower. Pickled
    (to data or serving worker processes, which need the modality's decoding, never its weights) it leaves the
    tower behind."""

    def __init__(self, tower: nn.Module | None) -> None:
        self.tower = tower

    def __call__(self) -> nn.Module:
        if self.tower is None:
            raise RuntimeError("this modality's tower stayed with the loaded model (not sent to worker processes)")
        return self.tower

    def __getstate__(self) -> dict:
        return {"tower": None}


def recorded_modality(
    name: str,
    tower: VisionTower,
    token: str,
    token_id: int,
    cls: type[Modality] = TowerModality,
    init_args: Mapping[str, Any] | None = None,
) -> Modality:
    """One modality of a loaded model, bound to ``name`` and holding ``token_id``, facts read from its tower.

    Args:
        name: its name (the tower's key).
        tower: the loaded tower.
        token, token_id: the placeholder the checkpoint records, and its id.
        cls, init_args: the modality class and its arguments (:func:`spec_class`); a
            :class:`TowerModality` by default.
    """
    init_args = dict(init_args or {})
    init_args["token"] = init_args.get("token") or token
    modality = cls(tower=BuiltTower(tower), **init_args).bind(name)
    modality.token_id = token_id
    modality.use_tower_facts(tower)
    return modality


def spec_class(spec: Any, where: str) -> tuple[type[Modality], dict[str, Any]]:
    """The class and arguments of a recorded ``{class_path, init_args}``.

    Raises:
        UnsafeInputError: a class path outside lvlm and its registered plugins, or not a modality (``where``
            names the file and key).
    """
    class_path = spec.get("class_path") if isinstance(spec, Mapping) else spec
    init_args = spec.get("init_args") if isinstance(spec, Mapping) else None
    return resolve_component(class_path, Modality, where), dict(init_args or {})
