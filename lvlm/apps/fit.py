"""``lvlm run RECIPE.yaml [overrides]``: the same as ``lvlm fit -c RECIPE.yaml [overrides]`` (Lightning >= 2.5.1
ships no ``lightning`` command, and ``lightning run`` never ran a YAML), and ``lvlm run EXPERIMENT.yaml`` runs an
experiment's stages one after the other. The runner itself is :mod:`lvlm.apps.recipe_runner`.
"""

from __future__ import annotations

from lvlm.apps.experiment import is_experiment, run_experiment
from lvlm.apps.recipe_runner import lightning_main


def main(argv: list[str] | None = None) -> int:
    """``lvlm run RECIPE.yaml [overrides]`` = ``lvlm fit -c RECIPE.yaml [overrides]``; an experiment file
    (``recipes/ablations/*.yaml``) runs its stages one after the other (``--stage NAME`` for one)."""
    argv = list(argv or [])
    if not argv or argv[0] in {"-h", "--help"} or not argv[0].endswith((".yaml", ".yml")):
        print(
            "usage: lvlm run RECIPE.yaml [more -c files and --key value overrides]\n"
            "       the same as: lvlm fit -c RECIPE.yaml [...]\n"
            "       lvlm run EXPERIMENT.yaml [--stage NAME] [...]: every stage of an experiment (recipes/ablations)"
        )
        return 0 if argv and argv[0] in {"-h", "--help"} else 2
    if is_experiment(argv[0]):
        rest, only = list(argv[1:]), None
        if "--stage" in rest:
            at = rest.index("--stage")
            only = rest[at + 1] if at + 1 < len(rest) else ""
            del rest[at : at + 2]
        return run_experiment(argv[0], rest, lambda args: lightning_main("fit", args), only=only)
    return lightning_main("fit", ["-c", argv[0], *argv[1:]])
