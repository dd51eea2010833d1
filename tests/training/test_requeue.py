"""SLURM's warning signal on a 2-process FSDP2 CPU run: SIGUSR1 -> checkpoint -> `scontrol requeue` -> the same
command resumes from `hpc_ckpt_1.ckpt` and ends with the weights of an uninterrupted run (every tensor within
1e-6). The LLM comes from a safetensors checkpoint, so both runs build it on meta and read their shards
(`lvlm.training.meta_init`). SLURM is emulated: its environment variables per task (as `srun` sets them) and an
`scontrol` on PATH that records its arguments; the signal is real."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import lightning.pytorch as pl
import pytest
import torch
from safetensors.torch import load_file
from transformers import LlamaConfig, LlamaForCausalLM

from tests.training.launch import REPO, env
from tests.training.tiny import tiny_model_args, write_recipe

MAX_STEPS, SIGNAL_AT = 6, 3


class PauseAtStep(pl.Callback):
    """Test-only: before the batch after ``step`` optimizer steps, write ``<marker>.<rank>`` and wait until
    ``<marker>.go`` exists (the test signals the paused ranks, then lets them go). Never pauses again."""

    def __init__(self, step: int, marker: str) -> None:
        self.step, self.marker = step, marker

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        mine = Path(f"{self.marker}.{trainer.global_rank}")
        if trainer.global_step != self.step or mine.exists():
            return
        mine.write_text(str(os.getpid()))
        deadline = time.monotonic() + 300
        while not Path(f"{self.marker}.go").exists() and time.monotonic() < deadline:
            time.sleep(0.05)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def srun(args: list[str], job_id: str, fake_bin: Path, log: Path) -> list[subprocess.Popen]:
    """Two `lvlm fit` tasks with the variables `srun --ntasks-per-node=2` gives them on one node."""
    port, tasks = _free_port(), []
    base = {k: v for k, v in env().items() if k not in {"RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_PORT"}}
    for rank in range(2):
        slurm = {
            "SLURM_JOB_ID": job_id, "SLURM_JOB_NAME": "videollava", "SLURM_NTASKS": "2", "SLURM_NNODES": "1",
            "SLURM_JOB_NUM_NODES": "1", "SLURM_NTASKS_PER_NODE": "2", "SLURM_NODEID": "0",
            "SLURM_PROCID": str(rank), "SLURM_LOCALID": str(rank), "SLURM_NODELIST": "127.0.0.1",
            "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "PATH": f"{fake_bin}{os.pathsep}{base['PATH']}",
        }  # fmt: skip
        out = open(log.with_suffix(f".{rank}.log"), "a")  # noqa: SIM115 - closed with the process
        tasks.append(subprocess.Popen([sys.executable, "-m", "lvlm", "fit", *args], cwd=REPO, env=base | slurm,
                                      stdout=out, stderr=subprocess.STDOUT))  # fmt: skip
    return tasks


def wait_all(tasks: list[subprocess.Popen], log: Path, timeout: float = 400) -> None:
    codes = [task.wait(timeout=timeout) for task in tasks]
    tails = "\n".join(log.with_suffix(f".{r}.log").read_text()[-3000:] for r in range(2))
    assert codes == [0, 0], f"exit codes {codes}:\n{tails}"


def pretrained_llm(tmp_path: Path) -> dict:
    """The tiny recipes' LLM saved as a safetensors checkpoint, so FSDP2 builds it on meta and reads shards."""
    directory = tmp_path / "llm"
    if not directory.exists():
        llm = tiny_model_args(tmp_path)["parts"]["llm"]["init_args"]["config"]
        torch.manual_seed(0)
        LlamaForCausalLM(LlamaConfig(**{k: v for k, v in llm.items() if k != "model_type"})).save_pretrained(directory)
    return {"class_path": "lvlm.models.language_model.LanguageModel", "init_args": {"pretrained": str(directory)}}


def recipe(tmp_path: Path, tokenizer_dir: Path, name: str, pause: bool) -> tuple[list[str], Path]:
    run_dir = tmp_path / name
    callbacks = [{"class_path": "lvlm.training.requeue.RequeueOnSignal"}]
    if pause:
        marker = str(tmp_path / "paused")
        callbacks.append({"class_path": f"{__name__}.PauseAtStep", "init_args": {"step": SIGNAL_AT, "marker": marker}})
    trainer = {"max_steps": MAX_STEPS, "logger": False, "default_root_dir": str(run_dir), "callbacks": callbacks}
    path = write_recipe(
        tmp_path / f"{name}.yaml",
        tokenizer_dir,
        optimisation={"train_llm": True},
        export={"dir": str(run_dir / "model")},
        parts={"llm": pretrained_llm(tmp_path)},
        trainer=trainer,
    )
    cpu = ["--trainer.accelerator=cpu", "--trainer.devices=2"]  # data_parallel_size: auto = 2
    return ["-c", str(path), "-c", str(REPO / "recipes/trainer/fsdp.yaml"), *cpu], run_dir


@pytest.mark.slow
def test_sigusr1_checkpoints_requeues_and_the_same_command_resumes(tmp_path, tokenizer_dir):
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir()
    scontrol = fake_bin / "scontrol"
    scontrol.write_text(f'#!/bin/sh\necho "$@" >> {tmp_path / "scontrol.calls"}\n')
    scontrol.chmod(0o755)
    full_args, full = recipe(tmp_path, tokenizer_dir, "full", pause=False)
    args, requeued = recipe(tmp_path, tokenizer_dir, "requeued", pause=True)

    uninterrupted = srun(full_args, "1001", fake_bin, tmp_path / "full")
    first = srun(args, "2002", fake_bin, tmp_path / "first")
    try:
        deadline = time.monotonic() + 300
        while not all(Path(f"{tmp_path / 'paused'}.{r}").exists() for r in range(2)):
            assert all(t.poll() is None for t in first), (tmp_path / "first.0.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "the ranks never reached the pause"
            time.sleep(0.2)
        for task in first:  # SLURM signals every task of the job
            os.kill(task.pid, signal.SIGUSR1)
        (tmp_path / "paused.go").touch()
        wait_all(first, tmp_path / "first")
    finally:
        for task in first:
            if task.poll() is None:
                task.kill()
    hpc = requeued / "hpc_ckpt_1.ckpt"
    assert sorted(p.name for p in hpc.iterdir()) == [".metadata", "__0_0.distcp", "__1_0.distcp", "meta.pt"]
    meta = torch.load(hpc / "meta.pt", weights_only=True)
    assert meta["global_step"] == SIGNAL_AT + 1 and meta["TinyDataModule"] == {"epoch": 0, "batches": SIGNAL_AT + 1}
    assert (tmp_path / "scontrol.calls").read_text() == "requeue 2002\n"  # rank 0 only
    assert not (requeued / "model").exists()  # exited without the end-of-fit export

    second = srun(args, "2002", fake_bin, tmp_path / "second")  # the requeued job: the same command
    wait_all(second, tmp_path / "second")
    wait_all(uninterrupted, tmp_path / "full")
    second_log = (tmp_path / "second.0.log").read_text()
    assert "Restoring states from the checkpoint path at" in second_log
    assert "the LLM was built on meta; each rank read its shards" in second_log
    expected, got = load_file(full / "model" / "model.safetensors"), load_file(requeued / "model" / "model.safetensors")
    assert expected.keys() == got.keys()
    for key in expected:
        torch.testing.assert_close(got[key], expected[key], rtol=0, atol=1e-6, msg=key)
