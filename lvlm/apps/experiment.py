"""``lvlm run EXPERIMENT.yaml``: several ``lvlm fit`` stages as one command, each with its own run folders.

An experiment file (``recipes/ablations/*.yaml``) names stage recipes and partial overlays::

    experiment: ablation-mae            # runs/<experiment>/<stage>/ and TensorBoard run names
    runs_dir: runs                      # optional, default runs
    overlay: {model: {...}}             # applied to every stage
    stages:
      - {name: pretrain, recipe: ../pretrain.yaml}
      - {name: finetune, recipe: ../finetune.yaml, overlay: {...}}

Each stage runs ``lvlm fit -c RECIPE -c <overlays> -c <run paths> [command-line arguments]`` with:
``trainer.default_root_dir`` = ``<runs_dir>/<experiment>/<stage>``, a TensorBoard logger named after the stage
under ``<runs_dir>/<experiment>``, the projector exported to ``<stage dir>/projector.safetensors`` and read by
the next stage (``model.parts.projector_checkpoint``), and the last stage's model exported to
``<runs_dir>/<experiment>/model``. Recipe paths are relative to the experiment file. Arguments after the file
(``-c recipes/trainer/fsdp.yaml``, ``--trainer.devices 4``) apply to every stage and win over the above.
``--stage NAME`` runs one stage only (its hand-off paths as if the earlier ones ran).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from lvlm.core.errors import UserError

KEYS = {"experiment", "runs_dir", "overlay", "stages", "description"}
STAGE_KEYS = {"name", "recipe", "overlay"}


@dataclass(frozen=True)
class Stage:
    """One ``lvlm fit`` of an experiment."""

    name: str
    recipe: Path
    overlay: dict[str, Any]


@dataclass(frozen=True)
class Experiment:
    """A parsed experiment file."""

    name: str
    runs_dir: Path
    overlay: dict[str, Any]
    stages: tuple[Stage, ...]

    def stage_dir(self, stage: Stage) -> Path:
        return self.runs_dir / self.name / stage.name


def is_experiment(path: str | Path) -> bool:
    """Whether a YAML file is an experiment (it has ``stages``) rather than a recipe."""
    try:
        data = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError):
        return False
    return isinstance(data, dict) and "stages" in data


def _mapping(value: Any, where: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise UserError(f"{where}: expected a mapping, got {type(value).__name__}")
    return value


def read_experiment(path: str | Path) -> Experiment:
    """Parse and check an experiment file; every mistake names the file and the field."""
    path = Path(path)
    data = _mapping(yaml.safe_load(path.read_text()), str(path))
    unknown = set(data) - KEYS
    if unknown:
        raise UserError(f"{path}: unknown keys {sorted(unknown)}; an experiment has {sorted(KEYS)}")
    if not isinstance(data.get("experiment"), str) or not data["experiment"]:
        raise UserError(f"{path}: experiment: give the run name (a string)")
    stages = data.get("stages")
    if not isinstance(stages, list) or not stages:
        raise UserError(f"{path}: stages: give a list of {{name, recipe, overlay}}")
    parsed = []
    for i, stage in enumerate(stages):
        where = f"{path}: stages[{i}]"
        stage = _mapping(stage, where)
        if set(stage) - STAGE_KEYS or not {"name", "recipe"} <= set(stage):
            raise UserError(f"{where}: a stage has name, recipe and an optional overlay; got {sorted(stage)}")
        recipe = (path.parent / stage["recipe"]).resolve()
        if not recipe.is_file():
            raise UserError(f"{where}.recipe: {recipe} does not exist")
        parsed.append(Stage(str(stage["name"]), recipe, _mapping(stage.get("overlay"), f"{where}.overlay")))
    if len({s.name for s in parsed}) != len(parsed):
        raise UserError(f"{path}: stages: names must differ, got {[s.name for s in parsed]}")
    overlay = _mapping(data.get("overlay"), f"{path}: overlay")
    return Experiment(data["experiment"], Path(data.get("runs_dir", "runs")), overlay, tuple(parsed))


def run_paths(experiment: Experiment, index: int) -> dict[str, Any]:
    """The overlay that gives stage ``index`` its own folders, logger and projector hand-off."""
    stage = experiment.stages[index]
    stage_dir = experiment.stage_dir(stage)
    last = index == len(experiment.stages) - 1
    export = {
        "projector": str(stage_dir / "projector.safetensors"),
        "dir": str(experiment.runs_dir / experiment.name / "model") if last else None,
    }
    model: dict[str, Any] = {"export": export}
    if index > 0:
        previous = experiment.stages[index - 1]
        model["parts"] = {"projector_checkpoint": str(experiment.stage_dir(previous) / "projector.safetensors")}
    logger = {
        "class_path": "lightning.pytorch.loggers.TensorBoardLogger",
        "init_args": {"save_dir": str(experiment.runs_dir / experiment.name), "name": stage.name},
    }
    return {"trainer": {"default_root_dir": str(stage_dir), "logger": logger}, "model": model}


def stage_arguments(experiment: Experiment, index: int, extra: list[str], folder: Path) -> list[str]:
    """``lvlm fit`` arguments of stage ``index``; overlay files are written into ``folder``."""
    stage = experiment.stages[index]
    folder.mkdir(parents=True, exist_ok=True)
    args = ["-c", str(stage.recipe)]
    for name, overlay in (
        ("common", experiment.overlay),
        ("stage", stage.overlay),
        ("paths", run_paths(experiment, index)),
    ):
        if overlay:
            file = folder / f"{stage.name}.{name}.yaml"
            file.write_text(yaml.safe_dump(overlay, sort_keys=False))
            args += ["-c", str(file)]
    return args + extra


def run_experiment(path: str | Path, extra: list[str], fit: Callable[[list[str]], int], only: str | None = None) -> int:
    """Run the stages in order (or only ``only``); returns the first non-zero exit code, else 0."""
    experiment = read_experiment(path)
    names = [s.name for s in experiment.stages]
    if only is not None and only not in names:
        raise UserError(f"--stage {only}: {path} has stages {names}")
    folder = experiment.runs_dir / experiment.name / "overlays"
    for index, stage in enumerate(experiment.stages):
        if only is not None and stage.name != only:
            continue
        print(
            f"lvlm run: {experiment.name} stage {index + 1}/{len(names)} '{stage.name}' "
            f"-> {experiment.stage_dir(stage)}"
        )
        try:
            code = fit(stage_arguments(experiment, index, extra, folder))
        except SystemExit as done:  # --print_config and --help end LightningCLI with SystemExit
            code = done.code if isinstance(done.code, int) else (0 if done.code is None else 1)
        if code:
            return code
    return 0
