"""Training-speed and data-mix logging.

Throughput is Lightning's ``ThroughputMonitor`` (samples, batches and tokens per second, per device and over all
devices), given :func:`batch_size` and :func:`batch_tokens` for lvlm's batches. Lightning has no callback for the
modality mix, so :class:`ModalityCounter` logs the cumulative samples per modality (``train/samples_<modality>``).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from typing import Any

import lightning.pytorch as pl


def batch_size(batch: Mapping[str, Any]) -> int:
    """Samples in a batch (``ThroughputMonitor``'s ``batch_size_fn``); a packed batch is one row of several."""
    keys = batch.get("keys")
    return len(keys) if keys is not None else int(batch["input_ids"].shape[0])


def batch_tokens(batch: Mapping[str, Any]) -> int:
    """Tokens in a batch, text and visual placeholders, padding excluded (``ThroughputMonitor``'s ``length_fn``)."""
    mask = batch.get("attention_mask")
    return int(mask.sum()) if mask is not None else int(batch["input_ids"].numel())


def batch_modalities(batch: Mapping[str, Any]) -> Counter[str]:
    """Samples per modality: ``batch["modalities"]`` (one name per sample) when present, else media counts."""
    names = batch.get("modalities")
    if names is not None:
        return Counter(str(n) for n in names)
    return Counter({key.removesuffix("s"): int(v.shape[0]) for key, v in batch.items() if key in ("images", "videos")})


class ModalityCounter(pl.Callback):
    """Logs cumulative ``train/samples_<modality>`` (this rank × world size) every training batch; resumable.

    A filler micro-batch (``batch["filler"]``, zero loss: ``lvlm.data.packed_pass``) trains nothing: not counted.
    """

    def __init__(self) -> None:
        self._samples: Counter[str] = Counter()

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs, batch, batch_idx) -> None:
        if not batch.get("filler"):
            self._samples.update(batch_modalities(batch))
        metrics = {f"train/samples_{name}": float(count * trainer.world_size) for name, count in self._samples.items()}
        pl_module.log_dict(metrics, batch_size=1)

    def state_dict(self) -> dict[str, Any]:
        return {"samples": dict(self._samples)}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._samples = Counter(state_dict.get("samples", {}))
