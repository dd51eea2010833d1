"""``lvlm quickstart``: the whole Video-LLaVA recipe on a synthetic world, on CPU, in minutes, offline.

1. write the synthetic world (images and mp4 videos of coloured shapes, real WebDataset shards);
2. train a tokenizer on the world's texts;
3. build the tiny towers and warm them up on the world (standing in for LanguageBind's alignment,
   see :mod:`lvlm.apps.quickstart_towers`), then save them as LanguageBind directories;
4. stage 1 then stage 2 through ``lvlm fit -c recipes/quickstart/stage{1,2}.yaml`` (the same CLI and
   LightningModule as a cluster run; only the recipe values differ);
5. greedy answers to every question of the held-out test split, scored by exact match, printed as a
   table per question type and modality next to chance, with one image and one video example.

The final model is an lvlm checkpoint with its tokenizer in ``OUT/model``: ``lvlm chat --model OUT/model``.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from lvlm.apps import command
from lvlm.apps.synthetic_runs import (
    ENV_DIR,
    FRAMES,
    RECIPES,
    TOWER,
    evaluate,
    run_stage,
    synthetic_world_sizes,
    write_tokenizer,
)
from lvlm.core.errors import UserError

STAGE_RECIPES = ("stage1.yaml", "stage2.yaml")


@dataclass(frozen=True)
class Plan:
    """Sizes and steps of one quickstart run (``full`` or ``fast``), before ``--steps-scale``."""

    stage1_train: int
    stage2_train: int
    stage2_test: int
    warmup_steps: int
    stage1_steps: int
    stage2_steps: int

    def scaled(self, scale: float) -> Plan:
        def s(n: int) -> int:
            return max(1, round(n * scale))

        return replace(
            self,
            warmup_steps=s(self.warmup_steps),
            stage1_steps=s(self.stage1_steps),
            stage2_steps=s(self.stage2_steps),
        )


PLANS = {
    "full": Plan(
        stage1_train=1000, stage2_train=2000, stage2_test=400, warmup_steps=600, stage1_steps=60, stage2_steps=2000
    ),
    "fast": Plan(
        stage1_train=200, stage2_train=1000, stage2_test=150, warmup_steps=600, stage1_steps=20, stage2_steps=600
    ),
}


@dataclass
class Quickstart:
    """Synthetic world -> tokenizer -> tower warm-up -> stage 1 -> stage 2 -> evaluation, on CPU.

    Attributes:
        out: output folder.
        fast: fewer samples and steps (CI; also env LVLM_QUICKSTART_FAST=1); still far above chance.
        steps_scale: multiply every training step count.
        seed: seed of the world and of training.
        recipes: folder with stage1.yaml and stage2.yaml.
        threads: torch threads of the main process (default 1: tiny models; the data worker uses another core).
    """

    out: str = "quickstart"
    fast: bool = field(default_factory=lambda: os.environ.get("LVLM_QUICKSTART_FAST") == "1")
    steps_scale: float = 1.0
    seed: int = 0
    recipes: str = str(RECIPES)
    threads: int = 1

    def run(self) -> int:
        """Check the recipes, then build the world, train both stages and evaluate under ``out``; returns 0."""
        if self.steps_scale <= 0:
            raise SystemExit("lvlm quickstart: --steps-scale must be > 0")
        check_recipes(Path(self.recipes))
        plan = PLANS["fast" if self.fast else "full"].scaled(self.steps_scale)
        import torch

        out = Path(self.out).resolve()
        out.mkdir(parents=True, exist_ok=True)
        threads, previous_dir = torch.get_num_threads(), os.environ.get(ENV_DIR)
        torch.set_num_threads(self.threads)
        os.environ[ENV_DIR] = str(out)  # the recipes read their paths from it
        try:
            run(self, plan, out)
        finally:
            torch.set_num_threads(threads)
            if previous_dir is None:
                os.environ.pop(ENV_DIR, None)
            else:
                os.environ[ENV_DIR] = previous_dir
        return 0


def main(argv: list[str] | None = None) -> int:
    """Run ``lvlm quickstart``; returns the exit status."""
    return command.run(Quickstart, argv, "lvlm quickstart")


def check_recipes(folder: Path) -> None:
    """Before any work: the stages' recipes are in ``--recipes`` (a user's folder may lack one).

    Raises:
        UserError: naming the folder and the missing files.
    """
    missing = [name for name in STAGE_RECIPES if not (folder / name).is_file()]
    if missing:
        raise UserError(
            f"--recipes {folder}: no {' or '.join(missing)}; leave --recipes out for the packaged ones, or "
            "write them there with `lvlm recipes copy quickstart FOLDER`"
        )


def run(args: Quickstart, plan: Plan, out: Path) -> None:
    start = time.perf_counter()
    timings: dict[str, float] = {}

    def step(name: str, fn, *fn_args):
        t0 = time.perf_counter()
        result = fn(*fn_args)
        timings[name] = time.perf_counter() - t0
        return result

    sizes = world_sizes(plan)
    step("world", write_world, out, sizes, args.seed)
    step("tokenizer", write_tokenizer, out)
    step("towers", write_towers, out, sizes, plan, args.seed)
    recipes = Path(args.recipes)
    if (out / "runs").exists():  # the stages' configs, projector and TensorBoard logs of an earlier quickstart
        print(f"[quickstart] replacing {out / 'runs'} of an earlier run", flush=True)
        shutil.rmtree(out / "runs")
    step("stage 1", run_stage, recipes / "stage1.yaml", plan.stage1_steps, args.seed)
    step("stage 2", run_stage, recipes / "stage2.yaml", plan.stage2_steps, args.seed)
    records = step("evaluation", evaluate, out / "model", out / "world")
    report(records, out, timings, time.perf_counter() - start)
    from lvlm.apps.quickstart_eval import write_examples

    examples = write_examples(out / "world", out / "examples")
    print(f"try: lvlm chat --model {out / 'model'} --temperature 0 " + " ".join(f"--{k} {v}" for k, v in examples))


def world_sizes(plan: Plan):
    return synthetic_world_sizes(plan.stage1_train, plan.stage2_train, 50, plan.stage2_test)


def write_world(out: Path, sizes, seed: int) -> None:
    from lvlm.data.synthetic import write_synthetic_world

    total = sizes.stage1_train + sizes.stage2_train + sizes.stage2_val + sizes.stage2_test
    print(f"[quickstart] writing the synthetic world ({total} samples, jpg/png + mp4) to {out / 'world'}", flush=True)
    world = write_synthetic_world(out / "world", seed=seed, sizes=sizes)
    print(f"[quickstart] shards: {json.dumps({k: len(v) for k, v in world.shards.items()})}", flush=True)


def write_towers(out: Path, sizes, plan: Plan, seed: int) -> None:
    import torch
    from tqdm import tqdm

    from lvlm.apps.quickstart_towers import WarmupSettings, save_languagebind_tower, warm_up_towers
    from lvlm.models.vision.clip_tower import LanguageBindImageTower, LanguageBindVideoTower

    torch.manual_seed(seed)
    image = LanguageBindImageTower(TOWER, select_layer=-1, select_feature="patch")
    video = LanguageBindVideoTower(TOWER, select_layer=-1, select_feature="cls_patch", num_frames=FRAMES)
    settings = WarmupSettings(steps=plan.warmup_steps, seed=seed)
    with tqdm(total=settings.steps, desc="tower warm-up", unit="step") as progress:
        stats = warm_up_towers(image, video, sizes, settings, progress)
    save_languagebind_tower(image, out / "towers" / "image")
    save_languagebind_tower(video, out / "towers" / "video")
    print(
        f"[quickstart] towers warmed up ({json.dumps({k: round(v, 3) for k, v in stats.items()})}), "
        f"frozen from here on -> {out / 'towers'}",
        flush=True,
    )


def report(records: list[dict[str, Any]], out: Path, timings: dict[str, float], total: float) -> None:
    from lvlm.eval.synthetic_qa import render_synthetic_table, synthetic_rows

    (out / "predictions.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    rows = synthetic_rows(records)
    print("\nAccuracy on the held-out test split (exact match after normalisation):")
    print(render_synthetic_table(rows))
    for modality in ("image", "video"):
        example = next((r for r in records if r["modality"] == modality), None)
        if example is not None:
            print(
                f"\n[{modality} {example['key']}] Q: {example['question']}\n"
                f"  reference: {example['answer']}\n  model:     {example['prediction']}"
            )
    steps = ", ".join(f"{name} {seconds:.0f}s" for name, seconds in timings.items())
    print(f"\nwall time {total:.0f}s ({steps})")
    print(f"model: {out / 'model'}")
    summary = {"rows": [r._asdict() for r in rows], "timings": timings, "total_seconds": total}
    (out / "results.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
