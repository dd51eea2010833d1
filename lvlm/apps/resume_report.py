"""``lvlm fit --ckpt_path``: the recipe and the command line decide; the checkpoint's settings are only compared.

LightningCLI's own handling loads a single-file checkpoint's hyper-parameters over the parsed config and
instantiates the class paths they name; lvlm replaces it: the checkpoint is read with ``weights_only=True``, its
hyper-parameters are never applied and never imported, and every setting that differs is printed.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from lvlm.core.specs import spec_of
from lvlm.models.io.weights import load_pickled_weights


def saved_hyperparameters(ckpt_path: str | Path) -> dict[str, Any]:
    """The hyper-parameters a run checkpoint records (``.ckpt`` file, or ``meta.pt`` in a sharded folder)."""
    path = Path(ckpt_path)
    source = path / "meta.pt" if path.is_dir() else path
    if not source.is_file():
        return {}
    checkpoint = load_pickled_weights(source, mmap=source.suffix == ".ckpt")
    return dict(checkpoint.get("hyper_parameters") or {})


def flatten(tree: Any, prefix: str = "") -> dict[str, Any]:
    """``{"a.b.c": leaf}`` of nested dicts; lists are leaves."""
    if isinstance(tree, Mapping) and tree:
        out: dict[str, Any] = {}
        for key, value in tree.items():
            out |= flatten(value, f"{prefix}.{key}" if prefix else str(key))
        return out
    return {prefix: tree}


def setting_differences(saved: Mapping[str, Any], current: Mapping[str, Any]) -> list[tuple[str, Any, Any]]:
    """``(key, checkpoint value, value now)`` for every model setting that differs."""
    old, new = flatten(spec_of(dict(saved))), flatten(spec_of(dict(current)))
    keys = sorted(set(old) | set(new))
    return [(key, old.get(key), new.get(key)) for key in keys if old.get(key) != new.get(key)]


def report(ckpt_path: str | Path, current_model_config: Mapping[str, Any]) -> str:
    """The lines printed when resuming: which settings now differ from the checkpoint's (the current ones win)."""
    saved = {k: v for k, v in saved_hyperparameters(ckpt_path).items() if not k.startswith("_")}
    differences = setting_differences(saved, current_model_config) if saved else []
    if not saved:
        return f"lvlm fit: resuming from {ckpt_path} (it records no settings to compare)"
    if not differences:
        return f"lvlm fit: resuming from {ckpt_path}; its model settings equal the recipe's"
    lines = [f"lvlm fit: resuming from {ckpt_path}; the recipe and command line win over these checkpoint settings:"]
    lines += [f"  model.{key}: checkpoint {old!r} -> now {new!r}" for key, old, new in differences]
    return "\n".join(lines)
