"""`RequeueOnSignal`: on SLURM's warning signal, checkpoint at the next step boundary, requeue, and stop.

`#SBATCH --signal=SIGUSR1@90` makes SLURM send SIGUSR1 to every task 90 s before the time limit. Lightning's
own handler (`SLURMEnvironment(auto_requeue=True)`) saves the checkpoint inside the signal handler, wherever
the ranks happen to be: with sharded (FSDP2) checkpoints that is a collective started at a different point on
each rank. Here the handler only sets a flag; after each training batch the ranks agree (one all-reduce of a
boolean) whether any rank got the signal, and if so all of them save `hpc_ckpt_<n>.ckpt` in the trainer's
`default_root_dir` together, rank 0 runs `scontrol requeue $SLURM_JOB_ID`, and the run exits (no end-of-fit
exports). When SLURM starts the job again, the same command resumes: Lightning loads the highest
`hpc_ckpt_<n>.ckpt` when `ckpt_path` is not given and SLURM is detected.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
from typing import Any

import lightning.pytorch as pl

log = logging.getLogger(__name__)


class RequeueOnSignal(pl.Callback):
    """Checkpoint, requeue and exit when the job is told its time is up.

    Args:
        signal_name: The signal SLURM sends (`--signal=SIGUSR1@90`).
        requeue: Run `scontrol requeue` (with `SLURM_ARRAY_JOB_ID_SLURM_ARRAY_TASK_ID` or `SLURM_JOB_ID`) after
            saving; off, or outside SLURM, the run only saves and exits (resume it with `--ckpt_path`).
    """

    def __init__(self, signal_name: str = "SIGUSR1", requeue: bool = True) -> None:
        self.signum = signal.Signals[signal_name]
        self.requeue = requeue
        self.received = False
        self._previous: Any = None

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # After Lightning registered its handlers (which this one replaces for the same signal).
        self._previous = signal.signal(self.signum, self._handle)

    def _handle(self, signum: int, frame: Any) -> None:
        self.received = True

    def on_train_batch_end(self, trainer: pl.Trainer, *args: Any) -> None:
        if not trainer.strategy.reduce_boolean_decision(self.received, all=False):
            return
        path = trainer._checkpoint_connector.hpc_save_path(trainer.default_root_dir)
        trainer.save_checkpoint(path)
        log.warning("lvlm: %s received; checkpoint saved to %s at step %d", self.signum.name, path, trainer.global_step)
        if self.requeue and trainer.is_global_zero:
            _requeue()
        trainer.strategy.barrier("lvlm-requeue")
        raise SystemExit(0)

    def teardown(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if self._previous is not None:
            signal.signal(self.signum, self._previous)
            self._previous = None


def _requeue() -> None:
    array, job = os.environ.get("SLURM_ARRAY_JOB_ID"), os.environ.get("SLURM_JOB_ID")
    if array:
        job = f"{array}_{os.environ['SLURM_ARRAY_TASK_ID']}"
    if job is None:
        log.warning("lvlm: not a SLURM job (no SLURM_JOB_ID): nothing to requeue; resume with --ckpt_path")
        return
    try:
        result = subprocess.call(["scontrol", "requeue", job])
    except FileNotFoundError:
        log.warning("lvlm: no `scontrol` command: job %s not requeued", job)
        return
    log.warning("lvlm: scontrol requeue %s %s", job, "done" if result == 0 else f"failed ({result})")
