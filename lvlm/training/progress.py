"""The fit progress bar, with real counts: Lightning's rich bar writes ``Epoch 0/-2`` when a run is bounded by
``max_steps`` (``max_epochs`` is then -1); this one writes ``Epoch 0`` then, and ``Epoch 0/3`` when bounded by
epochs. The bar itself counts the epoch's batches (``batches_per_epoch``). A logger version that is not a number
(a named run folder, ``version: tensorboard``) is not shown: Lightning would show its last four letters
(``v_num: oard``)."""

from __future__ import annotations

from typing import Any

import lightning.pytorch as pl
from lightning.pytorch.callbacks import RichProgressBar


class StepProgressBar(RichProgressBar):
    """Lightning's rich progress bar without the negative epoch count."""

    def _get_train_description(self, current_epoch: int) -> str:
        max_epochs = self.trainer.max_epochs
        text = f"Epoch {current_epoch}" + (f"/{max_epochs - 1}" if max_epochs is not None and max_epochs > 0 else "")
        return f"{text:{len(self.validation_description)}}"

    def get_metrics(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> dict[str, Any]:
        """Lightning's metrics, less a ``v_num`` that is not a version number."""
        items = super().get_metrics(trainer, pl_module)
        if not isinstance(items.get("v_num"), int):
            items.pop("v_num", None)
        return items
