"""The ``lvlm`` command: LightningCLI's ``fit``/``validate``/``test``/``predict`` plus lvlm's own tools.

Each tool lives in its own module: a typed command dataclass run by jsonargparse (:mod:`lvlm.apps.command`, so
every tool takes ``--config FILE`` and ``--print_config``) behind a ``main(argv) -> int`` function. This file only
dispatches, so ``lvlm --help`` stays fast (nothing heavy is imported until a command runs).
"""

from __future__ import annotations

import importlib
import os
import sys

# name -> (module with ``main(argv) -> int``, one-line help)
TOOLS: dict[str, tuple[str, str]] = {
    "run": ("lvlm.apps.fit", "run RECIPE.yaml [overrides]: the same as `lvlm fit -c RECIPE.yaml`"),
    "shards": ("lvlm.apps.shards", "convert Video-LLaVA/LLaVA JSON + media folders into WebDataset shards"),
    "chat": ("lvlm.apps.chat", "multi-turn terminal chat with a checkpoint, images and videos"),
    "serve": ("lvlm.apps.serve", "an OpenAI-compatible HTTP server (chat completions with images and videos)"),
    "eval": ("lvlm.apps.eval", "score predictions with the paper's protocols (video QA, POPE, VQA)"),
    "merge-lora": ("lvlm.apps.merge_lora", "merge a LoRA checkpoint into a full lvlm checkpoint"),
    "convert": ("lvlm.apps.convert", "convert checkpoints between lvlm and hf layouts"),
    "recipes": ("lvlm.apps.recipes", "list the recipes packaged with lvlm; `lvlm recipes copy NAME` copies one out"),
    "quickstart": ("lvlm.apps.quickstart", "synthetic data -> stage 1 -> stage 2 -> evaluation, on CPU"),
    "ablate": (
        "lvlm.apps.ablate",
        "the paper's alignment ablations in miniature: tower x data arms x seeds, one table",
    ),
    "diagnose": ("lvlm.apps.diagnose", "alignment of a model's video and image towers, before and after the projector"),
}
LIGHTNING_COMMANDS = {
    "fit": "train a model from a recipe: lvlm fit -c recipes/finetune.yaml",
    "validate": "run the validation loop of a recipe",
    "test": "run the test loop of a recipe",
    "predict": "batched generation to JSONL (lvlm predict --help), or Lightning's loop with -c RECIPE",
}


def usage() -> str:
    lines = ["usage: lvlm COMMAND [args]", "", "commands:"]
    for name, text in LIGHTNING_COMMANDS.items():
        lines.append(f"  {name:<12}{text}")
    for name, (_, text) in TOOLS.items():
        lines.append(f"  {name:<12}{text}")
    lines += ["", "`lvlm COMMAND --help` describes one command."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``lvlm`` console script and of ``python -m lvlm``."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in {"-h", "--help", "help"}:
        print(usage())
        sys.exit(0)
    if argv[0] in {"-V", "--version"}:
        from lvlm import __version__

        print(f"lvlm {__version__}")
        sys.exit(0)
    debug = "--debug" in argv or os.environ.get("LVLM_DEBUG", "") not in {"", "0"}
    argv = [arg for arg in argv if arg != "--debug"]
    command, rest = argv[0], argv[1:]
    if command.endswith((".yaml", ".yml")):
        sys.exit(f"lvlm: a recipe is not a command. Did you mean `lvlm fit -c {command}` (or `lvlm run {command}`)?")
    if command not in TOOLS and command not in LIGHTNING_COMMANDS:
        sys.exit(f"lvlm: unknown command {command!r}\n\n{usage()}")
    from lvlm.apps.command import exit_status  # jsonargparse: not needed for --help

    try:
        sys.exit(exit_status(f"lvlm {command}", lambda: run_command(command, rest), debug))
    except BrokenPipeError:  # `lvlm recipes | head`: the reader went away; nothing is left to say
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(141)


def run_command(command: str, argv: list[str]) -> int:
    """Run one command and return its exit code (``UserError`` propagates to :func:`main`)."""
    from lvlm.core.worker_lifetime import end_with_launcher

    end_with_launcher()  # a rank of a killed torchrun stops instead of writing on beside a resumed run
    if command in TOOLS:
        return importlib.import_module(TOOLS[command][0]).main(argv)
    from lvlm.apps.recipe_runner import has_recipe, lightning_main

    if command == "predict" and not has_recipe(argv):  # batched generation, not Lightning's predict loop
        return importlib.import_module("lvlm.apps.predict").main(argv)
    return lightning_main(command, argv)
