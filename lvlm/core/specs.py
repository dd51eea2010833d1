"""Typed recipe values back to plain data: what a run saves as its hyper-parameters.

jsonargparse turns a recipe's ``{class_path, init_args}`` into a factory (``functools.partial`` over the class)
or an instance; a checkpoint must hold plain containers only (it is read with ``weights_only=True``), so the
module records :func:`spec_of` of each argument.
"""

from __future__ import annotations

import functools
from dataclasses import fields, is_dataclass
from typing import Any

from lvlm.core.registry import class_path_of


def spec_of(value: Any) -> Any:
    """``{class_path, init_args}`` for factories, classes and components; plain data as it is."""
    if isinstance(value, functools.partial):
        cls = next((a for a in reversed(value.args) if isinstance(a, type)), value.func)
        return {"class_path": class_path_of(cls), "init_args": {k: spec_of(v) for k, v in value.keywords.items()}}
    if isinstance(value, type):
        return {"class_path": class_path_of(value)}
    if hasattr(value, "init_args") and callable(value.init_args):
        init_args = {k: spec_of(v) for k, v in value.init_args().items()}
        factory = getattr(value, "tower_factory", None)
        if factory is not None:
            init_args = {"tower": spec_of(factory)} | init_args
        return {"class_path": class_path_of(type(value)), "init_args": init_args}
    if is_dataclass(value) and not isinstance(value, type):
        return {f.name: spec_of(getattr(value, f.name)) for f in fields(value)}
    if isinstance(value, dict):
        return {str(k): spec_of(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [spec_of(v) for v in value]
    return value
