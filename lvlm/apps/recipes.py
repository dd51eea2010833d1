"""``lvlm recipes``: list the recipes lvlm ships (package data) and copy them out of the package.

    lvlm recipes                          # every packaged recipe, with the first line of its header comment
    lvlm recipes copy finetune.yaml       # -> ./recipes/finetune.yaml, then `lvlm fit -c recipes/finetune.yaml`
    lvlm recipes copy quickstart [DEST]   # a folder; `.` copies all of them (experiments name ../pretrain.yaml)

An existing file is never overwritten without ``--force``.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from jsonargparse import ActionConfigFile, ArgumentParser

from lvlm.core.errors import UserError
from lvlm.core.recipes import packaged_recipe, recipe_names, recipe_summary, recipes_root


def build_parser() -> ArgumentParser:
    parser = ArgumentParser(
        prog="lvlm recipes",
        description="List the recipes packaged with lvlm (no subcommand, or `list`) or copy one out (`copy`).",
    )
    parser.add_argument("--config", action=ActionConfigFile, help="a YAML file with these arguments")
    subcommands = parser.add_subcommands(required=False, dest="command")
    subcommands.add_subcommand("list", ArgumentParser(description="List the packaged recipes."), help="list them")
    copy = ArgumentParser(description="Copy a packaged recipe (a file or a folder) out of the package.")
    copy.add_argument("--config", action=ActionConfigFile, help="a YAML file with these arguments")
    copy.add_argument("name", type=str, help="a file or folder as `lvlm recipes` lists it; `.` for all of them")
    copy.add_argument("dest", type=str | None, nargs="?", default=None, help="where it goes (default: recipes/NAME)")
    copy.add_argument("--force", action="store_true", help="overwrite files that exist")
    subcommands.add_subcommand("copy", copy, help="copy one out of the package: copy NAME [DEST] [--force]")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "copy":
        written = copy_recipe(args.copy.name, None if args.copy.dest is None else Path(args.copy.dest), args.copy.force)
        print("\n".join(str(path) for path in written))
    else:
        print(listing())
    return 0


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
