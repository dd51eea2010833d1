"""``lvlm ablate``: the paper's alignment question in miniature, one command, several seeds per arm.

Does aligning the image and video towers *before* the shared projector help, and does joint image+video
training help both (Video-LLaVA, arXiv 2311.10122, §4.3)? On the quickstart's synthetic world:

1. write the world and its tokenizer once (:mod:`lvlm.apps.quickstart`);
2. per seed, the tower arms (:mod:`lvlm.apps.ablate_towers`: ``unified``, ``separated``, ``random``), saved as
   LanguageBind tower directories;
3. the data arms (:mod:`lvlm.apps.ablate_data`: ``joint``, ``image_only``, ``video_only``, ``transfer``);
4. per cell (tower arm x data arm) and seed, stage 2 through ``lvlm fit -c recipes/quickstart/stage2.yaml``
   (projector + LLM from scratch: no stage 1, see docs/ablations.md), then the held-out questions and the
   alignment diagnostics (:mod:`lvlm.training.alignment_callback`) of the trained model;
5. one table (:mod:`lvlm.apps.ablate_table`): ``OUT/ablation.md`` and ``OUT/ablation.json``.

Every run's TensorBoard log lies under ``OUT/runs`` (``tensorboard --logdir OUT/runs`` shows them side by
side). A finished step leaves a marker file (``arm.json``, ``result.json``); rerunning the same command
resumes: finished arms and runs are not redone.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from lvlm.apps import command
from lvlm.apps.ablate_data import DATA_ARMS, write_data_arm
from lvlm.apps.ablate_table import collect_results, write_table
from lvlm.apps.ablate_towers import TOWER_ARMS, write_tower_arm
from lvlm.apps.synthetic_runs import ENV_DIR, RECIPES, synthetic_world_sizes
from lvlm.core.errors import UserError
from lvlm.core.work_folder import WorkFolder, write_atomic

Cell = tuple[str, str]  # (tower arm, data arm)
# Every tower arm on joint data and on the transfer split; the single-modality data arms on unified towers.
FULL_CELLS: tuple[Cell, ...] = (
    *((tower, data) for tower in TOWER_ARMS for data in ("joint", "transfer")),
    ("unified", "image_only"),
    ("unified", "video_only"),
)
FAST_CELLS: tuple[Cell, ...] = (
    ("unified", "joint"),
    ("separated", "joint"),
    ("random", "joint"),
    ("unified", "transfer"),
)


@dataclass(frozen=True)
class GridPlan:
    """Sizes, steps, seeds and cells of one grid."""

    stage2_train: int
    stage2_test: int
    warmup_steps: int
    stage2_steps: int
    seeds: tuple[int, ...]
    cells: tuple[Cell, ...]
    diagnostic_videos: int = 64


PLANS = {
    "full": GridPlan(
        stage2_train=1500, stage2_test=200, warmup_steps=600, stage2_steps=500, seeds=(0, 1, 2), cells=FULL_CELLS
    ),
    "fast": GridPlan(
        stage2_train=800, stage2_test=100, warmup_steps=300, stage2_steps=200, seeds=(0, 1), cells=FAST_CELLS
    ),
}


@dataclass
class Ablate:
    """Tower arms (unified/separated/random) x data arms (joint/image/video/transfer) x seeds on the synthetic
    world: one accuracy + alignment table (Markdown and JSON). Rerun the same command to resume.

    Attributes:
        out: output folder.
        fast: a smaller grid for a first look (4 cells x 2 seeds).
        seeds: number of seeds per cell (default: 3, --fast 2).
        steps_scale: multiply the warm-up and stage-2 steps.
        cells: comma-separated TOWER:DATA cells (default: the plan's).
        threads: torch threads of the main process.
    """

    out: str = "ablation"
    fast: bool = False
    seeds: int | None = None
    steps_scale: float = 1.0
    cells: str | None = None
    threads: int = 1

    def run(self) -> int:
        """Run (or resume) the grid and write its table; returns 0."""
        return ablate(self)


def plan_from(args: Ablate) -> GridPlan:
    """The plan the arguments ask for; a bad value is a one-line :class:`UserError`."""
    plan = PLANS["fast" if args.fast else "full"]
    if args.steps_scale <= 0:
        raise UserError("--steps-scale must be > 0")
    changes: dict[str, Any] = {
        "warmup_steps": max(1, round(plan.warmup_steps * args.steps_scale)),
        "stage2_steps": max(1, round(plan.stage2_steps * args.steps_scale)),
    }
    if args.seeds is not None:
        if args.seeds < 1:
            raise UserError("--seeds must be >= 1")
        changes["seeds"] = tuple(range(args.seeds))
    if args.cells:
        changes["cells"] = tuple(_cell(text) for text in args.cells.split(","))
    return GridPlan(**(asdict(plan) | changes))


def _cell(text: str) -> Cell:
    tower, _, data = text.strip().partition(":")
    if tower not in TOWER_ARMS or data not in DATA_ARMS:
        raise UserError(f"--cells: {text!r} is not TOWER:DATA with TOWER in {TOWER_ARMS} and DATA in {DATA_ARMS}")
    return tower, data


def main(argv: list[str] | None = None) -> int:
    """Run ``lvlm ablate``; returns the exit status."""
    return command.run(Ablate, argv, "lvlm ablate")


def ablate(args: Ablate) -> int:
    """Run the grid ``args`` plans under ``args.out``."""
    plan = plan_from(args)
    import torch

    out = Path(args.out).resolve()
    threads = torch.get_num_threads()
    torch.set_num_threads(args.threads)
    try:
        run_grid(plan, out)
    finally:
        torch.set_num_threads(threads)
    return 0


FIXED = ("stage2_train", "stage2_test", "warmup_steps", "stage2_steps", "diagnostic_videos")


def _check_same_plan(out: Path, plan: GridPlan) -> None:
    """Resuming is only sound with the same sizes and steps: refuse a different plan in the same folder (its
    ``plan.json``, a :class:`~lvlm.core.work_folder.WorkFolder`'s settings; cells and seeds may change)."""
    folder, wanted = WorkFolder(out, "plan.json"), asdict(plan)
    changed = folder.changed(wanted, ignore=set(wanted) - set(FIXED))
    if changed:
        raise UserError(f"{out / 'plan.json'}: this folder holds a grid with other {changed}; use another --out")
    folder.record(wanted)


def world_sizes(plan: GridPlan):
    return synthetic_world_sizes(0, plan.stage2_train, 0, plan.stage2_test)


def run_grid(plan: GridPlan, out: Path) -> dict[str, Any]:
    """Every step of the grid not done yet, then the table; returns the table's JSON."""
    start = time.perf_counter()
    out.mkdir(parents=True, exist_ok=True)
    _check_same_plan(out, plan)
    sizes = world_sizes(plan)
    _shared_inputs(out, sizes)
    towers = {cell[0] for cell in plan.cells}
    for seed in plan.seeds:
        for arm in [a for a in TOWER_ARMS if a in towers]:
            directory = out / "towers" / arm / f"seed{seed}"
            if not (directory / "arm.json").is_file():
                steps = "no warm-up" if arm == "random" else f"{plan.warmup_steps} warm-up steps"
                _say(f"tower arm {arm}, seed {seed} ({steps})")
                write_tower_arm(arm, directory, sizes, plan.warmup_steps, seed)
    for arm in [a for a in DATA_ARMS if a in {cell[1] for cell in plan.cells}]:
        if not (out / "data" / arm / "arm.json").is_file():
            counts = write_data_arm(arm, sorted((out / "world" / "stage2").glob("train-*.tar")), out / "data" / arm)
            _say(f"data arm {arm}: {counts}")
    for seed in plan.seeds:
        for cell in plan.cells:
            run_dir = out / "runs" / f"{cell[0]}-{cell[1]}" / f"seed{seed}"
            if not (run_dir / "result.json").is_file():
                run_cell(plan, out, cell, seed, run_dir)
    table = write_table(collect_results(out, plan.cells, plan.seeds), out)
    _say(f"table -> {out / 'ablation.md'} ({time.perf_counter() - start:.0f} s this invocation)")
    return table


def _shared_inputs(out: Path, sizes) -> None:
    from lvlm.apps.synthetic_runs import write_tokenizer
    from lvlm.data.synthetic import write_synthetic_world

    if not (out / "world" / "world.json").is_file():
        _say(f"writing the synthetic world to {out / 'world'}")
        write_synthetic_world(out / "world", seed=0, sizes=sizes)
    if not (out / "tokenizer" / "tokenizer_config.json").is_file():
        write_tokenizer(out)


def run_cell(plan: GridPlan, out: Path, cell: Cell, seed: int, run_dir: Path) -> dict[str, Any]:
    """Stage 2 of one cell and seed in ``run_dir`` (laid out as a quickstart folder), then its evaluation."""
    from lvlm.apps.ablate_eval import evaluate_run

    if run_dir.exists():  # an interrupted run: start it again from scratch
        shutil.rmtree(run_dir)
    run_dir.mkdir(parents=True)
    links = {
        "tokenizer": out / "tokenizer",
        "towers": out / "towers" / cell[0] / f"seed{seed}",
        "world": out / "data" / cell[1],
    }
    for name, target in links.items():
        (run_dir / name).symlink_to(target, target_is_directory=True)
    _say(f"stage 2: towers {cell[0]}, data {cell[1]}, seed {seed} ({plan.stage2_steps} steps) -> {run_dir}")
    t0 = time.perf_counter()
    _fit(run_dir, plan.stage2_steps, seed)
    train_seconds = time.perf_counter() - t0
    result = evaluate_run(run_dir, out / "world", plan.diagnostic_videos)
    result |= {"cell": list(cell), "seed": seed, "train_seconds": train_seconds, "steps": plan.stage2_steps}
    result["seconds"] = time.perf_counter() - t0
    write_atomic(run_dir / "result.json", json.dumps(result, indent=2) + "\n")  # the run's marker: whole or absent
    return result


def _fit(run_dir: Path, steps: int, seed: int) -> None:
    from lvlm.apps.recipe_runner import lightning_main

    previous = os.environ.get(ENV_DIR)
    os.environ[ENV_DIR] = str(run_dir)  # the quickstart recipe reads every path from it
    try:
        lightning_main(
            "fit",
            [
                "-c",
                str(RECIPES / "stage2.yaml"),
                "--model.parts.projector_checkpoint=null",
                f"--trainer.max_steps={steps}",
                f"--data.init_args.sampling.batches_per_epoch={steps}",
                f"--seed_everything={seed}",
                "--trainer.enable_progress_bar=false",
            ],
        )
    finally:
        if previous is None:
            os.environ.pop(ENV_DIR, None)
        else:
            os.environ[ENV_DIR] = previous


def _say(text: str) -> None:
    print(f"[ablate] {text}", flush=True)
