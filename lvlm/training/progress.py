"""The fit progress bar, with real counts: Lightning's rich bar writes ``Epoch 0/-2`` when a run is bounded by
``max_steps`` (``max_epochs`` is then -1); this one writes ``Epoch 0`` then, and ``Epoch 0/3`` when bounded by
epochs. The bar itself counts the epoch's batches (``batches_per_epoch``)."""

from __future__ import annotations

from lightning.pytorch.callbacks import RichProgressBar


class StepProgressBar(RichProgressBar):
    """Lightning's rich progress bar without the negative epoch count."""

    def _get_train_description(self, current_epoch: int) -> str:
        max_epochs = self.trainer.max_epochs
        text = f"Epoch {current_epoch}" + (f"/{max_epochs - 1}" if max_epochs is not None and max_epochs > 0 else "")
        return f"{text:{len(self.validation_description)}}"
