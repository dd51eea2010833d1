"""Batching: pad token sequences and stack each modality's media in sample order, then marker order.

Legend: `b` samples, `l` padded length, `n_i` images in the batch, `n_v` videos, `t` frames, `s` input side.

In a DataLoader worker, a batch's tensors are laid out in one shared-memory block (`share_batch`): the batch
then crosses to the main process as one file descriptor instead of one per tensor (each a round trip to the
worker's resource-sharer thread), and no tensor is copied again into shared memory on the way.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import torch

from lvlm.data.tokenization import IGNORE_INDEX
from lvlm.models.modality import Modality

Stacker = Callable[[Sequence[torch.Tensor]], torch.Tensor]


@dataclass
class ProcessedSample:
    """One sample ready for batching.

    Attributes:
        key: The sample's `__key__`.
        input_ids: `[n]` long ids with expanded placeholders.
        labels: `[n]` long targets, or None (generation prompts).
        media: `(batch_key, tensor)` per kept media item, in marker order; images `[3, s, s]`, videos `[t, 3, s, s]`.
        modality: `"text"`, or the modality names present joined by `+` in marker order (`"video+image"`).
        meta: Metadata passed through to the batch (reference answer, question id, source url, ...).
    """

    key: str
    input_ids: torch.Tensor
    labels: torch.Tensor | None
    media: list[tuple[str, torch.Tensor]] = field(default_factory=list)
    modality: str = "text"
    meta: dict[str, Any] = field(default_factory=dict)


class Collator:
    """Pads and stacks `ProcessedSample`s into the batch dict the model consumes.

    The batch holds `input_ids` `[b, l]`, `attention_mask` `[b, l]` (1 on real tokens), `labels` `[b, l]`
    (-100 on pads; present only if every sample has labels), one stacked tensor per media batch key present
    (`images` `[n_i, 3, s, s]`, `videos` `[n_v, t, 3, s, s]`), and `keys`, `modalities`, `meta` lists of length b.

    Args:
        pad_token_id: Id written on pad positions (the tokenizer's pad id).
        padding_side: `"right"` for training and validation loss, `"left"` for batched generation.
        modalities: Each modality stacks the items of its batch key (`modality.collate`); a key no modality
            claims is stacked with `torch.stack`.
    """

    def __init__(
        self,
        pad_token_id: int,
        padding_side: Literal["right", "left"] = "right",
        modalities: Sequence[Modality] = (),
    ) -> None:
        if padding_side not in ("right", "left"):
            raise ValueError(f"padding_side must be 'right' or 'left', got {padding_side!r}")
        self.pad_token_id = pad_token_id
        self.padding_side = padding_side
        self.stackers: dict[str, Stacker] = {m.input_name: m.collate for m in modalities}

    def __call__(self, samples: Sequence[ProcessedSample]) -> dict[str, Any]:
        if not samples:
            raise ValueError("cannot collate an empty list of samples")
        length = max(int(s.input_ids.shape[0]) for s in samples)
        input_ids = torch.full((len(samples), length), self.pad_token_id, dtype=torch.long)
        attention_mask = torch.zeros((len(samples), length), dtype=torch.long)
        with_labels = all(s.labels is not None for s in samples)
        labels = torch.full((len(samples), length), IGNORE_INDEX, dtype=torch.long)
        for row, sample in enumerate(samples):
            n = int(sample.input_ids.shape[0])
            cols = slice(0, n) if self.padding_side == "right" else slice(length - n, length)
            input_ids[row, cols] = sample.input_ids
            attention_mask[row, cols] = 1
            if with_labels:
                labels[row, cols] = sample.labels
        batch: dict[str, Any] = {"input_ids": input_ids, "attention_mask": attention_mask}
        if with_labels:
            batch["labels"] = labels
        batch.update(stack_media(samples, self.stackers))
        batch["keys"] = [s.key for s in samples]
        batch["modalities"] = [s.modality for s in samples]
        batch["meta"] = [s.meta for s in samples]
        return share_batch(batch)


_ALIGN = 64  # bytes: every tensor of a shared batch starts on a cache line


def share_batch(batch: dict[str, Any]) -> dict[str, Any]:
    """In a DataLoader worker, moves the batch's top-level CPU tensors into one shared-memory block (same values,
    dtypes, shapes; each tensor contiguous, none overlapping another); elsewhere returns the batch unchanged.

    The DataLoader would otherwise copy each tensor into its own shared-memory file when sending it, and the main
    process would fetch one file descriptor per tensor.
    """
    if torch.utils.data.get_worker_info() is None:
        return batch
    tensors = {k: v for k, v in batch.items() if isinstance(v, torch.Tensor) and v.device.type == "cpu"}
    if not tensors:
        return batch
    offsets, size = {}, 0
    for key, tensor in tensors.items():
        offsets[key] = size
        size += -(-tensor.numel() * tensor.element_size() // _ALIGN) * _ALIGN
    storage = torch.UntypedStorage._new_shared(max(size, _ALIGN))  # as torch's default_collate does in workers
    for key, tensor in tensors.items():
        view = torch.empty(0, dtype=tensor.dtype).set_(storage, offsets[key] // tensor.element_size(), tensor.shape)
        batch[key] = view.copy_(tensor)
    return batch


def stack_media(
    samples: Sequence[ProcessedSample], stackers: Mapping[str, Stacker] | None = None
) -> dict[str, torch.Tensor]:
    """Stacks media per batch key, in sample order then marker order; keys with no media are absent.

    Args:
        samples: The batch's samples.
        stackers: The stacking function of each batch key (its modality's `collate`); default `torch.stack`.

    Raises:
        ValueError: If items of one batch key differ in shape; the message names the samples.
    """
    grouped: dict[str, list[tuple[str, torch.Tensor]]] = {}
    for sample in samples:
        for batch_key, tensor in sample.media:
            grouped.setdefault(batch_key, []).append((sample.key, tensor))
    out: dict[str, torch.Tensor] = {}
    for batch_key, items in grouped.items():
        shapes = {tuple(t.shape) for _, t in items}
        if len(shapes) > 1:
            detail = ", ".join(f"{key}: {tuple(t.shape)}" for key, t in items)
            raise ValueError(
                f"cannot stack {batch_key!r}: items differ in shape ({detail}); check the media transforms"
            )
        out[batch_key] = (stackers or {}).get(batch_key, torch.stack)([t for _, t in items])
    return out
