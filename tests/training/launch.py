"""Subprocess launches of the `lvlm` command for the multi-process and kill/resume tests."""

from __future__ import annotations

import contextlib
import functools
import io
import os
import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]


def env() -> dict[str, str]:
    return os.environ | {
        "HF_HUB_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
        "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
    }


def checkpoint_callback(directory: Path, every: int) -> dict:
    return {
        "class_path": "lightning.pytorch.callbacks.ModelCheckpoint",
        "init_args": {"dirpath": str(directory), "every_n_train_steps": every, "save_top_k": -1},
    }


def run(args: list[str], timeout: float = 240) -> subprocess.CompletedProcess:
    """Run a command from the repository root; on failure the assertion shows the output's tail."""
    result = subprocess.run(args, cwd=REPO, env=env(), capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, f"{' '.join(args)} failed:\n{result.stdout[-3000:]}\n{result.stderr[-5000:]}"
    return result


def torchrun_fit(nproc: int, *args: str) -> subprocess.CompletedProcess:
    """``torchrun --standalone --nproc_per_node=N -m lvlm fit ARGS`` (the documented launch)."""
    torchrun = str(Path(sys.executable).parent / "torchrun")
    return run([torchrun, "--standalone", f"--nproc_per_node={nproc}", "-m", "lvlm", "fit", *args])


@functools.cache
def print_config(*args: str) -> dict:
    """The resolved config of `lvlm fit ARGS --print_config` (parsed only; cached per argument list)."""
    from lvlm.apps.recipe_runner import lightning_main

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        try:
            lightning_main("fit", [*args, "--print_config"])
        except SystemExit as exit_info:
            assert exit_info.code in (0, None), f"lvlm fit {' '.join(args)} --print_config failed"
    return yaml.safe_load(out.getvalue())
