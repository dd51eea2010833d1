"""Training-speed and data-mix logging: tokens/s, samples/s and samples per modality (TensorBoard)."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Mapping
from typing import Any

import lightning.pytorch as pl


def batch_modalities(batch: Mapping[str, Any]) -> Counter[str]:
    """Samples per modality: ``batch["modalities"]`` (one name per sample) when present, else media counts."""
    names = batch.get("modalities")
    if names is not None:
        return Counter(str(n) for n in names)
    counts = Counter(
        {key.removesuffix("s"): int(v.shape[0]) for key, v in batch.items() if key in ("images", "videos")}
    )
    return counts


class ThroughputLogger(pl.Callback):
    """Logs ``train/tokens_per_s``, ``train/samples_per_s`` (this rank × world size) and cumulative
    ``train/samples_<modality>`` every training batch.

    Tokens are the attention mask's ones (text and visual placeholders), measured between consecutive
    batch ends, so data loading time is included.
    """

    def __init__(self) -> None:
        self._last: float | None = None
        self._samples: Counter[str] = Counter()

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs, batch, batch_idx) -> None:
        now = time.perf_counter()
        keys = batch.get("keys")  # a packed batch is one row holding several samples
        samples = len(keys) if keys is not None else int(batch["input_ids"].shape[0])
        mask = batch.get("attention_mask")
        tokens = int(mask.sum()) if mask is not None else int(batch["input_ids"].numel())
        self._samples.update(batch_modalities(batch))
        metrics = {f"train/samples_{name}": float(count * trainer.world_size) for name, count in self._samples.items()}
        if self._last is not None:
            elapsed = max(now - self._last, 1e-9)
            metrics["train/tokens_per_s"] = tokens * trainer.world_size / elapsed
            metrics["train/samples_per_s"] = samples * trainer.world_size / elapsed
        self._last = now
        pl_module.log_dict(metrics, batch_size=1)

    def state_dict(self) -> dict[str, Any]:
        return {"samples": dict(self._samples)}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._samples = Counter(state_dict.get("samples", {}))
