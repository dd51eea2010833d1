"""``lvlm recipes``: list the recipes lvlm ships (package data) and copy them out of the package.

    lvlm recipes                          # every packaged recipe, with the first line of its header comment
    lvlm recipes copy finetune.yaml       # -> ./recipes/finetune.yaml, then `lvlm fit -c recipes/finetune.yaml`
    lvlm recipes copy quickstart [DEST]   # a folder; `.` copies all of them (experiments name ../pretrain.yaml)

An existing file is never overwritten without ``--force``.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from lvlm.apps import command
from lvlm.core.errors import UserError
from lvlm.core.recipes import packaged_recipe, recipe_names, recipe_summary, recipes_root


@dataclass
class ListRecipes:
    """List the recipes packaged with lvlm, each with the first line of its header comment."""

    def run(self) -> int:
        print(listing())
        return 0


@dataclass
class CopyRecipe:
    """Copy a packaged recipe (a file or a folder) out of the package: copy NAME [DEST] [--force].

    Attributes:
        name: a file or folder as `lvlm recipes` lists it; `.` for all of them.
        dest: where it goes (default: recipes/NAME); also the second word after `copy`.
        force: overwrite files that exist.
    """

    name: str
    dest: str | None = None
    force: bool = False

    def run(self) -> int:
        written = copy_recipe(self.name, None if self.dest is None else Path(self.dest), self.force)
        print("\n".join(str(path) for path in written))
        return 0


COMMANDS = {"list": ListRecipes, "copy": CopyRecipe}


def main(argv: list[str] | None = None) -> int:
    """``lvlm recipes [list]`` or ``lvlm recipes copy NAME [DEST] [--force]`` (``--config``/``--print_config`` too)."""
    argv = list(argv or [])
    if not argv or argv[0].startswith("--") and argv[0] not in {"--help", "-h"}:
        argv = ["list", *argv]
    return command.run_subcommand(COMMANDS, _with_flags(argv), "lvlm recipes", dest="action")


def _with_flags(argv: list[str]) -> list[str]:
    """``copy NAME [DEST]`` → ``copy --name NAME [--dest DEST]`` (the words after ``copy`` that are not flags)."""
    if argv[:1] != ["copy"]:
        return argv
    words, rest, i = [], [], 1
    while i < len(argv):
        if argv[i].startswith("-"):
            rest.append(argv[i])
            if argv[i] in {"--config", "--dest", "--name"} and i + 1 < len(argv):
                rest.append(argv[i + 1])
                i += 1
        else:
            words.append(argv[i])
        i += 1
    if len(words) > 2:
        raise UserError(f"copy takes NAME and at most one DEST, got {words}")
    named = [flag for pair in zip(("--name", "--dest"), words) for flag in pair]
    return ["copy", *named, *rest]


def listing() -> str:
    """One line per packaged recipe: its name and the first line of its header comment."""
    root = recipes_root()
    names = recipe_names()
    width = max(len(name) for name in names) + 2
    lines = [f"Recipes packaged with lvlm ({root}); `lvlm recipes copy NAME [DEST]` copies one out:"]
    lines += [f"  {name:<{width}}{recipe_summary(root / name)}".rstrip() for name in names]
    return "\n".join(lines)


def copy_recipe(name: str, dest: Path | None = None, force: bool = False) -> list[Path]:
    """Copy the packaged recipe file or folder ``name`` to ``dest`` (default ``recipes/NAME``), byte for byte.

    A file copied to an existing folder goes inside it. Nothing is written when a target exists and ``force`` is
    off.

    Returns:
        The files written, in order.

    Raises:
        UserError: no packaged recipe is called ``name``, or a target exists (without ``force``).
    """
    source = packaged_recipe(name)
    relative = source.relative_to(recipes_root().resolve())
    dest = Path("recipes", relative) if dest is None else dest
    if source.is_file():
        pairs = [(source, dest / source.name if dest.is_dir() else dest)]
    else:
        pairs = [(path, dest / path.relative_to(source)) for path in sorted(source.rglob("*")) if path.is_file()]
    existing = [target for _, target in pairs if target.exists()]
    if existing and not force:
        more = f" (and {len(existing) - 1} more)" if len(existing) > 1 else ""
        raise UserError(f"{existing[0]} exists{more}; pass --force to overwrite")
    for path, target in pairs:
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, target)
    return [target for _, target in pairs]
