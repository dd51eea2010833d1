"""Test-only callback: stop a run at a known point so the test can kill it with SIGKILL there."""

from __future__ import annotations

import time
from pathlib import Path

import lightning.pytorch as pl


class StallAfterStep(pl.Callback):
    """At the start of the batch after ``step`` optimizer steps (its checkpoint written), write ``marker`` and
    sleep; once the marker exists it never stalls again, so the same recipe resumes."""

    def __init__(self, step: int, marker: str, seconds: float = 600.0) -> None:
        self.step, self.marker, self.seconds = step, Path(marker), seconds

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if trainer.global_step == self.step and not self.marker.exists():
            self.marker.write_text(str(trainer.global_step))
            time.sleep(self.seconds)
