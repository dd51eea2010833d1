"""A run killed with SIGKILL mid-training and resumed from its last checkpoint ends with the same weights
as an uninterrupted run (deterministic CPU, every tensor within 1e-6)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
import torch
from safetensors.torch import load_file

from tests.training.launch import REPO, checkpoint_callback, env, run
from tests.training.tiny import write_recipe

MAX_STEPS, EVERY, KILL_AFTER = 6, 2, 3  # checkpoints at steps 2, 4, 6; killed while step 4 is about to run


def recipe(tmp_path, tokenizer_dir, name: str, block: bool = False):
    run_dir = tmp_path / name
    callbacks = [checkpoint_callback(run_dir / "checkpoints", every=EVERY)]
    if block:
        marker = str(tmp_path / "blocked")
        callbacks.append(
            {"class_path": "tests.training.tiny.BlockAtStep", "init_args": {"step": KILL_AFTER, "marker": marker}}
        )
    trainer = {"max_steps": MAX_STEPS, "logger": False, "default_root_dir": str(run_dir), "callbacks": callbacks}
    path = write_recipe(
        tmp_path / f"{name}.yaml",
        tokenizer_dir,
        optimisation={"train_llm": True},
        export={"dir": str(run_dir / "model")},
        trainer=trainer,
    )
    return path, run_dir


def wait_for(path, process: subprocess.Popen, timeout: float = 180.0) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert process.poll() is None, f"the run ended before reaching step {KILL_AFTER}"
        assert time.monotonic() < deadline, f"no {path} after {timeout} s"
        time.sleep(0.2)


@pytest.mark.slow
def test_sigkill_then_resume_matches_uninterrupted_run(tmp_path, tokenizer_dir):
    killed_recipe, killed = recipe(tmp_path, tokenizer_dir, "killed", block=True)
    full_recipe, full = recipe(tmp_path, tokenizer_dir, "full")
    python = [sys.executable, "-m", "lvlm"]
    with open(tmp_path / "killed.log", "w") as log:
        victim = subprocess.Popen(
            [*python, "fit", "-c", str(killed_recipe)], cwd=REPO, env=env(), stdout=log, stderr=log
        )
        try:
            run([*python, "run", str(full_recipe)])  # the uninterrupted run, meanwhile (`lvlm run` = `lvlm fit -c`)
            wait_for(tmp_path / "blocked", victim)
            os.kill(victim.pid, signal.SIGKILL)
            assert victim.wait(timeout=30) == -signal.SIGKILL
        finally:
            if victim.poll() is None:
                victim.kill()
    checkpoints = sorted(p.name for p in (killed / "checkpoints").iterdir())
    assert checkpoints == ["epoch=0-step=2.ckpt"] and not (killed / "model").exists()

    # The same command again, from the last checkpoint (LightningCLI reads the model's hparams from it).
    run([*python, "fit", "-c", str(killed_recipe), f"--ckpt_path={killed / 'checkpoints' / checkpoints[-1]}"])
    assert sorted(p.name for p in (killed / "checkpoints").iterdir())[-1] == f"epoch=0-step={MAX_STEPS}.ckpt"

    expected, got = load_file(full / "model" / "model.safetensors"), load_file(killed / "model" / "model.safetensors")
    assert expected.keys() == got.keys()
    for key in expected:
        torch.testing.assert_close(got[key], expected[key], rtol=0, atol=1e-6, msg=key)
    start = torch.load(killed / "checkpoints" / checkpoints[-1], weights_only=True)
    assert start["TinyDataModule"] == {"epoch": 0, "batches": EVERY}  # the data position, restored by the resume
    head = start["state_dict"]["model.llm.causal_lm.lm_head.weight"]
    assert not torch.equal(head, expected["llm.causal_lm.lm_head.weight"])
