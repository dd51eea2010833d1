"""Command-line conveniences of ``lvlm fit`` applied before LightningCLI parses.

- ``--optimizer X`` / ``--lr_scheduler X`` (LightningCLI's spelling) are the module's
  ``--model.optimisation.optimizer`` / ``--model.optimisation.lr_scheduler``: lvlm's ``configure_optimizers`` keeps
  the paper's parameter groups, so LightningCLI's automatic optimizer (which would replace them) is off.
- ``model.parts.modalities`` is a mapping, which jsonargparse replaces whole when a later ``-c`` file or a dotted
  override names one entry. lvlm merges it itself, at any depth and in argument order, with jsonargparse's own
  rule for a changed ``class_path`` (keep the earlier ``init_args`` the new class accepts, drop the rest), and
  passes the merged mapping as one last overlay. ``null`` removes an entry.
- ``--data.sampling.batches_per_epoch=null`` (a field of a settings group set to null; with or without
  ``init_args``) is given as ``--data.init_args.sampling '{batches_per_epoch: null}'``: jsonargparse reads a null
  inside a dataclass group of a class's ``init_args`` as the string ``'None'``; a group given as a mapping merges
  into the earlier one and keeps its other fields.
"""

from __future__ import annotations

import copy
import importlib
import inspect
from pathlib import Path
from typing import Any

import yaml

ALIASES = {"--optimizer": "--model.optimisation.optimizer", "--lr_scheduler": "--model.optimisation.lr_scheduler"}
MODALITIES_FLAG = "--model.parts.modalities"
CONFIG_FLAGS = ("-c", "--config")
# The settings groups of the data module, a class given by class path (its settings sit under ``init_args``);
# tests/apps/test_fit_args.py holds them equal to LVLMDataModule's dataclass arguments. The model's groups need
# nothing: LightningCLI takes the module's own arguments directly, where a null stays null.
GROUPS = {"data": ("sources", "sampling", "media", "loader")}
NULLS = ("null", "none", "~")


def _alias(flag: str) -> str:
    for short, full in ALIASES.items():
        if flag == short or flag.startswith(short + "."):
            return full + flag[len(short) :]
    return flag


def _accepted(class_path: Any) -> set[str] | None:
    """Constructor arguments of a class named in a recipe (the user's own file), None when unknown."""
    if not isinstance(class_path, str) or "." not in class_path:
        return None
    module, _, name = class_path.rpartition(".")
    try:
        return set(inspect.signature(getattr(importlib.import_module(module), name)).parameters)
    except (ImportError, AttributeError, TypeError, ValueError):
        return None


def merge(base: Any, update: Any) -> Any:
    """``update`` over ``base``: mappings merge key by key; a changed ``class_path`` keeps only the earlier
    ``init_args`` its class accepts; anything else replaces."""
    if not isinstance(base, dict) or not isinstance(update, dict):
        return copy.deepcopy(update)
    merged = copy.deepcopy(base)
    new_class = update.get("class_path")
    if new_class is not None and new_class != base.get("class_path") and isinstance(base.get("init_args"), dict):
        accepted = _accepted(new_class)
        kept = {k: v for k, v in base["init_args"].items() if accepted is not None and k in accepted}
        merged["init_args"] = kept
    for key, value in update.items():
        merged[key] = merge(merged.get(key), value) if isinstance(value, dict) else copy.deepcopy(value)
    return merged


def read_yaml_or_none(path: str) -> Any:
    """The YAML in ``path``, or None when it cannot be read or parsed (LightningCLI reports such files itself)."""
    try:
        return yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError):
        return None


def _modalities_in_file(path: str) -> Any:
    data = read_yaml_or_none(path)
    model = data.get("model") if isinstance(data, dict) else None
    parts = model.get("parts") if isinstance(model, dict) else None
    return parts.get("modalities") if isinstance(parts, dict) else None


def _nested(dotted: str, value: Any) -> dict[str, Any]:
    tree: Any = value
    for part in reversed([p for p in dotted.split(".") if p]):
        tree = {part: tree}
    return tree


def _null_in_group(flag: str, value: str | None) -> list[str] | None:
    """``--data[.init_args].GROUP.FIELD null`` as ``--data.init_args.GROUP '{FIELD: null}'``; None for other flags."""
    parts = flag.removeprefix("--").split(".")
    if value is None or value.strip().lower() not in NULLS or len(parts) < 3 or parts[0] not in GROUPS:
        return None
    rest = parts[2:] if parts[1] == "init_args" else parts[1:]
    if len(rest) != 2 or rest[0] not in GROUPS[parts[0]]:
        return None
    return [f"--{parts[0]}.init_args.{rest[0]}", f"{{{rest[1]}: null}}"]


def rewrite_args(argv: list[str]) -> list[str]:
    """``argv`` with the aliases expanded and ``model.parts.modalities`` merged into one final overlay.

    The overlay is a YAML string given to ``-c`` (jsonargparse reads a config string as well as a file), so
    no file is left behind.
    """
    out: list[str] = []
    modalities: dict[str, Any] | None = None
    i = 0
    while i < len(argv):
        flag, has_value, inline = argv[i].partition("=")
        value = inline if has_value else (argv[i + 1] if i + 1 < len(argv) else None)
        step = 1 if has_value else 2
        if flag.startswith("--"):
            flag = _alias(flag)
        if flag in CONFIG_FLAGS and value is not None:
            found = _modalities_in_file(value)
            if isinstance(found, dict):
                modalities = merge(modalities or {}, found)
            out += [flag, value]
            i += step
            continue
        if (nulled := _null_in_group(flag, value)) is not None:
            out += nulled
            i += step
            continue
        if flag == MODALITIES_FLAG or flag.startswith(MODALITIES_FLAG + "."):
            parsed = yaml.safe_load(value) if value is not None else None
            modalities = merge(modalities or {}, _nested(flag[len(MODALITIES_FLAG) + 1 :], parsed) or {})
            i += step
            continue
        out.append(flag + ("=" + inline if has_value else ""))
        i += 1
    if modalities is None:
        return out
    overlay = yaml.safe_dump(
        {"model": {"parts": {"modalities": modalities}}}, sort_keys=False, default_flow_style=True, width=1 << 30
    )
    return [*out, "-c", overlay.strip()]
