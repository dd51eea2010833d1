"""Saved settings are vetted, field by field and by type, before jsonargparse sees them.

jsonargparse imports more than ``class_path`` entries: a plain string in a field typed as a class or a callable
(``"projector": "somepkg.make"``) is imported as an object path, and a string in a field typed ``Any`` is read as
YAML, so ``"{class_path: somepkg.Thing}"`` there builds ``somepkg.Thing``. A file must choose nothing of that, so
:func:`vet_settings` walks saved settings along the type hints of the class they configure and applies the
registry rule (:func:`lvlm.core.registry.resolve_component`) to every value jsonargparse could import:

- a mapping with ``class_path``: the class must be a component of the kind the field expects (its init args are
  then walked with that class's own hints);
- a string in a field that admits no ``str`` but a class or callable: the same rule (a plain-string class path);
- a string in an ``Any``/``object`` field: read as YAML the way jsonargparse would, and what it holds is walked;
- mappings, lists and dataclass fields: walked with their element and field types.
Strings in fields that admit ``str`` are never imported by jsonargparse and pass as they are.
"""

from __future__ import annotations

import dataclasses
import inspect
import types
import typing
from collections.abc import Callable, Mapping
from pathlib import PurePath
from typing import Any

import yaml

from lvlm.core.registry import resolve_component

PLAIN_TYPES = (str, int, float, bool, type(None), bytes, PurePath)
LIGHTNING_ENTRIES = ("_class_path", "_instantiator")  # Lightning's, dropped by lvlm: never called


def vet_settings(settings: Mapping[str, Any], owner: type, bases: tuple[type, ...], where: str) -> None:
    """Refuse, before any import, every value of ``settings`` (the init args of ``owner``) that would import code.

    Args:
        settings: init args of ``owner`` read from a file (a checkpoint's hyper-parameters, a saved config).
        owner: the class they configure (``LVLMModule``): its ``__init__`` hints say what each field may hold.
        bases: component base classes accepted where a hint names no more precise class (``VisionTower``...).
        where: the file and key, for the error (``last.ckpt: hyper_parameters``).

    Raises:
        UnsafeInputError: the value, the file and key that named it, and why it is refused.
    """
    _vet_init_args(settings, owner, bases, where)


def _vet_init_args(args: Any, cls: type, bases: tuple[type, ...], where: str) -> None:
    if not isinstance(args, Mapping):
        _vet(args, Any, bases, where)
        return
    hints = _init_hints(cls)
    for key, value in args.items():
        if key in LIGHTNING_ENTRIES:
            continue
        _vet(value, hints.get(str(key), Any), bases, f"{where}.{key}")


def _vet(value: Any, hint: Any, bases: tuple[type, ...], where: str) -> None:
    if value is None or isinstance(value, bool | int | float):
        return
    options = _union_members(hint)
    if isinstance(value, str):
        _vet_string(value, options, bases, where)
    elif isinstance(value, Mapping):
        _vet_mapping(value, options, bases, where)
    elif isinstance(value, list | tuple):
        element = _element_hint(options)
        for i, item in enumerate(value):
            _vet(item, element, bases, f"{where}[{i}]")


def _vet_string(value: str, options: list[Any], bases: tuple[type, ...], where: str) -> None:
    if any(option is str or _is_subclass(option, PurePath) for option in options):
        return  # jsonargparse takes a string as a string where the field admits one
    if any(option in (Any, object) for option in options):
        try:
            parsed = yaml.safe_load(value)
        except yaml.YAMLError:
            return  # not YAML: jsonargparse keeps it as a string
        if isinstance(parsed, Mapping | list):
            _vet(parsed, Any, bases, where)
        return
    if any(_importable(option) for option in options):
        resolve_component(value, _expected(options, bases), where)


def _vet_mapping(value: Mapping[str, Any], options: list[Any], bases: tuple[type, ...], where: str) -> None:
    if "class_path" in value:
        cls = resolve_component(value["class_path"], _expected(options, bases), f"{where}.class_path")
        _vet_init_args(value.get("init_args") or {}, cls, bases, f"{where}.init_args")
        extra = {k: v for k, v in value.items() if k not in ("class_path", "init_args", "dict_kwargs")}
        _vet_init_args(extra, cls, bases, where)
        return
    for option in options:
        if dataclasses.is_dataclass(option) and isinstance(option, type):
            _vet_init_args(value, option, bases, where)
            return
    element = _value_hint(options)
    for key, item in value.items():
        _vet(item, element, bases, f"{where}.{key}")


# --- reading type hints ---------------------------------------------------------------------------------------
def _init_hints(cls: type) -> dict[str, Any]:
    """``__init__`` parameter hints of a class (a dataclass's field types); empty when they cannot be read."""
    target = cls.__init__ if isinstance(cls, type) else cls
    try:
        return typing.get_type_hints(target)
    except Exception:  # unresolvable forward references in a third party's hints: every field is then `Any`
        try:
            return {name: Any for name in inspect.signature(target).parameters}
        except (TypeError, ValueError):
            return {}


def _union_members(hint: Any) -> list[Any]:
    """``X | Y | None`` → ``[X, Y, NoneType]``; ``Annotated``/``Optional`` unwrapped; anything else ``[hint]``."""
    origin = typing.get_origin(hint)
    if origin is typing.Annotated:
        return _union_members(typing.get_args(hint)[0])
    if origin in (typing.Union, types.UnionType):
        return [member for arg in typing.get_args(hint) for member in _union_members(arg)]
    return [hint]


def _element_hint(options: list[Any]) -> Any:
    for option in options:
        args = typing.get_args(option)
        if typing.get_origin(option) in (list, tuple, set, frozenset) or _is_subclass(
            typing.get_origin(option), typing.Sequence
        ):
            return args[0] if args else Any
    return Any


def _value_hint(options: list[Any]) -> Any:
    for option in options:
        if _is_subclass(typing.get_origin(option), Mapping):
            args = typing.get_args(option)
            return args[1] if len(args) == 2 else Any
    return Any


def _importable(option: Any) -> bool:
    """Whether jsonargparse would import a string for this type: a class (not plain data) or a callable."""
    origin = typing.get_origin(option) or option
    if origin is typing.Literal or origin in PLAIN_TYPES:
        return False
    if origin in (list, tuple, dict, set, frozenset) or _is_subclass(origin, Mapping):
        return False
    return isinstance(origin, type) or origin is Callable or _is_subclass(origin, Callable)


def _expected(options: list[Any], bases: tuple[type, ...]) -> tuple[type, ...]:
    """The classes a field expects (``Callable[[], LanguageModel]`` → ``LanguageModel``); ``bases`` when it names
    none that is a component."""
    found: list[type] = []
    for option in options:
        candidates = [option, *typing.get_args(option)]
        if typing.get_origin(option) is not None and _is_subclass(typing.get_origin(option), Callable):
            args = typing.get_args(option)
            candidates = [args[-1]] if args else []
        found += [c for c in candidates if isinstance(c, type) and c not in (*PLAIN_TYPES, Any, object)]
    return tuple(found) or bases


def _is_subclass(candidate: Any, parent: Any) -> bool:
    try:
        return isinstance(candidate, type) and issubclass(candidate, parent)
    except TypeError:
        return False
