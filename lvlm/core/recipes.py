"""The recipes lvlm ships as package data (``lvlm/recipes``): found through :mod:`importlib.resources`.

A wheel carries them (``setup.cfg``'s ``package_data``), so ``lvlm quickstart``, ``lvlm ablate`` and
``lvlm recipes`` find them wherever lvlm is installed, with no checkout of the repository. A checkout's top-level
``recipes`` is a symbolic link to the same folder, so ``lvlm fit -c recipes/finetune.yaml`` works from its root.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from lvlm.core.errors import UserError


def recipes_root() -> Path:
    """The folder of the packaged recipes on disk (pip installs packages as files, so it is a real folder)."""
    return Path(str(files("lvlm").joinpath("recipes")))


def recipe_names() -> list[str]:
    """Every packaged recipe file, as a ``/``-separated path relative to :func:`recipes_root`, sorted."""
    root = recipes_root()
    return sorted(path.relative_to(root).as_posix() for path in root.rglob("*") if path.is_file())


def packaged_recipe(name: str) -> Path:
    """The packaged recipe file or folder ``name`` (``finetune.yaml``, ``quickstart``, ``.`` for all of them).

    Raises:
        UserError: when no packaged recipe has that name.
    """
    root = recipes_root()
    path = (root / name).resolve()
    if not path.is_relative_to(root.resolve()) or not path.exists():
        raise UserError(f"no packaged recipe {name!r}; `lvlm recipes` lists them")
    return path


def recipe_summary(path: Path) -> str:
    """The first line of a recipe's header comment (a ``#!`` line skipped), or ``""`` when it has none."""
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("#!"):
            continue
        return line[1:].strip() if line.startswith("#") else ""
    return ""
