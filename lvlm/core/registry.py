"""Class paths read from files resolve only to lvlm components, and are vetted before anything is imported.

A saved model (``lvlm_config.json``), a run checkpoint's hyper-parameters and a saved run config name their
components by class path. Importing an arbitrary path is running code (``os.system``, a module with
import-time effects), so a class path read from a file is accepted only when

1. it is a dotted path of identifiers whose top-level package is ``lvlm`` or a package that registered
   components through an ``lvlm.*`` entry-point group (checked *before* the import), and
2. it names a class that is a subclass of the component base the field expects (checked after).

A short name (no dot) is looked up among the entry points of the field's group (``lvlm.towers`` ...).
Plugins register with, in their ``pyproject.toml``::

    [project.entry-points."lvlm.modalities"]
    thermal = "my_plugin.modality:ThermalModality"
"""

from __future__ import annotations

import importlib
import re
from functools import cache
from importlib.metadata import EntryPoint, distributions
from typing import Any

from lvlm.core.errors import UnsafeInputError

GROUP_PREFIX = "lvlm."
_DOTTED = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")


@cache
def plugin_entry_points() -> tuple[EntryPoint, ...]:
    """Every installed entry point of an ``lvlm.*`` group (read once per process)."""
    found = {(ep.group, ep.name, ep.value): ep for dist in distributions() for ep in dist.entry_points}
    return tuple(ep for key, ep in sorted(found.items()) if ep.group.startswith(GROUP_PREFIX))


def trusted_packages() -> frozenset[str]:
    """Top-level packages whose classes may be named by a file: lvlm and every registered plugin package."""
    return frozenset({"lvlm"} | {ep.value.split(":")[0].split(".")[0] for ep in plugin_entry_points()})


def class_path_of(cls: type) -> str:
    """``module.QualName`` of a class: what a saved file records."""
    return f"{cls.__module__}.{cls.__qualname__}"


def recorded_class(cls: type) -> type:
    """The class a saved file records for an instance of ``cls``: wrapper classes that torch makes at run time
    (FSDP2's ``fully_shard`` swaps a module's class for ``FSDP<Name>(FSDPModule, Name)``) are the same
    component, so the first class of the MRO that torch did not make."""
    for klass in cls.__mro__:
        if klass.__module__.startswith("torch.") or any(b.__name__ == "FSDPModule" for b in klass.__bases__):
            continue
        return klass
    return cls


def _bases_text(bases: tuple[type, ...]) -> str:
    return " or ".join(class_path_of(b) for b in bases)


def resolve_component(class_path: Any, bases: type | tuple[type, ...], where: str, group: str | None = None) -> type:
    """The class a file names, if it is a component of the expected kind; refused before import otherwise.

    Args:
        class_path: the text read from the file (``lvlm.models.vision.clip_tower.CLIPVisionTower``), or a short
            name registered in ``group``.
        bases: the component base class(es) the class must derive from.
        where: the file and key that named it, for the error (``model/lvlm_config.json: llm.class_path``).
        group: the entry-point group of short names (``lvlm.towers``).

    Raises:
        UnsafeInputError: not a dotted path, outside lvlm and its registered plugins, not a class, or not a
            subclass of ``bases``.
    """
    bases = bases if isinstance(bases, tuple) else (bases,)
    if not isinstance(class_path, str) or not _DOTTED.match(class_path):
        raise UnsafeInputError(f"{where}: {class_path!r} is not a class path (dotted identifiers expected)")
    if "." not in class_path:
        return _resolve_short_name(class_path, bases, where, group)
    top = class_path.split(".")[0]
    if top not in trusted_packages():
        raise UnsafeInputError(
            f"{where}: refused class path {class_path!r}: a file may name only classes of lvlm or of a package "
            f"registered through an 'lvlm.*' entry point (registered: {sorted(trusted_packages())})"
        )
    module_name, _, attr = class_path.rpartition(".")
    try:
        target = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as error:
        raise UnsafeInputError(f"{where}: cannot find class {class_path!r} ({error})") from error
    return _checked(target, class_path, bases, where)


def _resolve_short_name(name: str, bases: tuple[type, ...], where: str, group: str | None) -> type:
    candidates = [ep for ep in plugin_entry_points() if ep.name == name and (group is None or ep.group == group)]
    if len(candidates) != 1:
        known = sorted({ep.name for ep in plugin_entry_points() if group is None or ep.group == group})
        problem = "no" if not candidates else "more than one"
        raise UnsafeInputError(f"{where}: {problem} registered component named {name!r} (registered: {known})")
    return _checked(candidates[0].load(), name, bases, where)


def _checked(target: Any, name: str, bases: tuple[type, ...], where: str) -> type:
    if not isinstance(target, type) or not issubclass(target, bases):
        raise UnsafeInputError(f"{where}: {name!r} is not a subclass of {_bases_text(bases)}; refused")
    return target
