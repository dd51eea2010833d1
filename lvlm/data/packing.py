"""Sequence packing: samples concatenated into one row per micro-batch under a token budget.

A padded batch of Video-LLaVA samples wastes most of its positions: an image sample is about 256 visual tokens
plus its text, a video sample 8 x 257 plus its text, and a padded batch is as long as its longest sample. A
packed micro-batch is one row `[1, l]` holding whole samples back to back, `l <= max_tokens`, with
`position_ids` restarting at 0 at every sample and no `attention_mask`: transformers then builds a
block-diagonal causal mask from the position resets (sdpa and eager: `masking_utils.find_packed_sequence_indices`;
flash-attention 2 runs varlen over the same boundaries), so attention never crosses samples. The first token of
every sample has label -100, so no sample is trained to predict the next one's first token; the mean loss over
supervised tokens equals that of the padded batch.

Legend: `l` packed length, `n_i` images, `n_v` videos.
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence
from typing import Any

import torch

from lvlm.data.collate import ProcessedSample, share_batch, stack_media
from lvlm.data.sample_pipeline import PreparedSample
from lvlm.data.tokenization import IGNORE_INDEX
from lvlm.models.modality import Modality


def first_fit_decreasing(lengths: Sequence[int], capacity: int) -> list[list[int]]:
    """Bins of indices whose lengths sum to at most `capacity`, longest items placed first into the first bin
    with room (each length must be at most `capacity`)."""
    bins: list[list[int]] = []
    room: list[int] = []
    for i in sorted(range(len(lengths)), key=lambda i: -lengths[i]):
        target = next((b for b, free in enumerate(room) if free >= lengths[i]), None)
        if target is None:
            bins.append([])
            room.append(capacity)
            target = len(bins) - 1
        bins[target].append(i)
        room[target] -= lengths[i]
    return bins


def pack_batches(
    samples: Iterator[PreparedSample], max_tokens: int, rng: random.Random, by_modality: bool, buffer: int = 64
) -> Iterator[list[PreparedSample]]:
    """Cuts a sample stream into packed micro-batches of at most `max_tokens` tokens.

    `buffer` samples at a time are packed first-fit-decreasing; every bin but the emptiest is yielded (in random
    order) and the emptiest bin's samples wait for the next buffer, so bins stay nearly full. With
    `by_modality`, multimodal and text-only samples are packed apart (the original's modality-grouped sampler).
    At the end of a finite stream every remaining bin is yielded.
    """
    pending: dict[bool, list[PreparedSample]] = {True: [], False: []}
    exhausted = False
    while not exhausted:
        for _ in range(buffer):
            sample = next(samples, None)
            if sample is None:
                exhausted = True
                break
            pending[bool(sample.media) if by_modality else True].append(sample)
        ready: list[list[PreparedSample]] = []
        for group, items in pending.items():
            bins = [[items[i] for i in b] for b in first_fit_decreasing([len(s.tokens) for s in items], max_tokens)]
            bins.sort(key=lambda b: -sum(len(s.tokens) for s in b))
            keep = [] if exhausted or not bins else bins.pop()
            ready += bins
            pending[group] = keep
        rng.shuffle(ready)
        yield from ready


class PackingCollator:
    """Concatenates `ProcessedSample`s into one packed row.

    The batch holds `input_ids`, `position_ids`, `labels` `[1, l]` (no `attention_mask`: the position resets
    delimit the samples), the stacked media (`images` `[n_i, 3, s, s]`, `videos` `[n_v, t, 3, s, s]`, sample
    order then marker order, as the placeholders appear in the row), and `keys`, `modalities`, `meta` lists with
    one entry per packed sample.

    Args:
        modalities: Each modality stacks the items of its batch key (`modality.collate`).
    """

    def __init__(self, modalities: Sequence[Modality] = ()) -> None:
        self.stackers = {m.input_name: m.collate for m in modalities}

    def __call__(self, samples: Sequence[ProcessedSample]) -> dict[str, Any]:
        if not samples:
            raise ValueError("cannot pack an empty list of samples")
        if any(s.labels is None for s in samples):
            raise ValueError("packing is for training: every sample needs labels")
        labels = []
        for sample in samples:
            own = sample.labels.clone()
            own[0] = IGNORE_INDEX  # never a target: the previous sample's last position must not predict it
            labels.append(own)
        batch: dict[str, Any] = {
            "input_ids": torch.cat([s.input_ids for s in samples])[None],
            "position_ids": torch.cat([torch.arange(s.input_ids.shape[0]) for s in samples])[None],
            "labels": torch.cat(labels)[None],
        }
        batch.update(stack_media(samples, self.stackers))
        batch["keys"] = [s.key for s in samples]
        batch["modalities"] = [s.modality for s in samples]
        batch["meta"] = [s.meta for s in samples]
        return share_batch(batch)
