"""Component factories given in recipes as ``{class_path, init_args}`` and built only when asked.

The module keeps the factories as plain dicts (so ``save_hyperparameters`` and ``load_from_checkpoint``
work and nothing heavy is built at parse time) and instantiates them in ``configure_model``. A
``class_path`` may name a class or a function returning the component (e.g.
``lvlm.models.checkpoints.languagebind.load_languagebind_tower``).
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

Factory = Mapping[str, Any]


def resolve(class_path: str, where: str) -> Callable[..., Any]:
    """The class or function named by a dotted ``class_path``; the error names the recipe field."""
    module_name, _, attr = class_path.rpartition(".")
    if not module_name:
        raise ValueError(f"{where}: class_path {class_path!r} must be a dotted path like 'pkg.module.Class'")
    try:
        target = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as err:
        raise ValueError(f"{where}: cannot import class_path {class_path!r} ({err})") from err
    if not callable(target):
        raise ValueError(f"{where}: class_path {class_path!r} is not a class or function")
    return target


def check_factory(spec: Factory, where: str) -> None:
    """Cheap validation at construction: the target imports and accepts the given ``init_args`` names."""
    if not isinstance(spec, Mapping) or "class_path" not in spec:
        raise ValueError(f"{where}: expected {{class_path: ..., init_args: {{...}}}}, got {spec!r}")
    unknown_keys = set(spec) - {"class_path", "init_args", "dict_kwargs"}
    if unknown_keys:
        raise ValueError(f"{where}: unknown keys {sorted(unknown_keys)} (use class_path and init_args)")
    target = resolve(spec["class_path"], where)
    parameters = inspect.signature(target).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
        return
    unknown = set(spec.get("init_args") or {}) - set(parameters)
    if unknown:
        raise ValueError(
            f"{where}: {spec['class_path']} takes no argument(s) {sorted(unknown)}; it takes {sorted(parameters)}"
        )


def build(spec: Factory, where: str) -> Any:
    """Instantiate ``{class_path, init_args}``."""
    check_factory(spec, where)
    kwargs = dict(spec.get("init_args") or {}) | dict(spec.get("dict_kwargs") or {})
    return resolve(spec["class_path"], where)(**kwargs)


def plain(spec: Any) -> Any:
    """A deep copy made of dicts and lists only (jsonargparse ``Namespace`` values included)."""
    if hasattr(spec, "as_dict"):
        spec = spec.as_dict()
    if isinstance(spec, Mapping):
        return {str(k): plain(v) for k, v in spec.items()}
    if isinstance(spec, list | tuple):
        return [plain(v) for v in spec]
    return spec


@dataclass
class Towers:
    """Tower factories by modality, each ``{class_path, init_args}`` returning a ``VisionTower``.

    A dataclass (not a plain dict) so that a recipe overlay replaces one tower and keeps the others
    (``-c recipes/ablations/mae_image_tower.yaml`` only names ``model.towers.image``); ``null`` drops a
    tower (the image-only and video-only ablations). ``extra`` adds modalities beyond image and video.
    """

    image: dict[str, Any] | None = None
    video: dict[str, Any] | None = None
    extra: dict[str, dict[str, Any]] | None = None

    def factories(self) -> dict[str, dict[str, Any]]:
        named = {"image": self.image, "video": self.video} | dict(self.extra or {})
        return {name: plain(spec) for name, spec in named.items() if spec is not None}


def tower_factories(towers: Towers | Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """``{name: factory}`` from a :class:`Towers` (recipes), the plain dict saved in hparams
    (``load_from_checkpoint``) or a saved ``config.yaml`` section (``image``/``video``/``extra``, nulls)."""
    if isinstance(towers, Towers):
        return towers.factories()
    towers = plain(towers)
    extra = towers.pop("extra", None) or {}
    return {name: spec for name, spec in (towers | extra).items() if spec is not None}
