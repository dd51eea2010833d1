"""Batchers of the training stream: a worker's prepared samples (tokenized, media still encoded) → batches.

A batcher is a small strategy that :class:`lvlm.data.train_stream.TrainStream` hands a sampler's
:class:`~lvlm.data.samplers.Draw`; `LVLMDataModule` picks one from `data.loader`:

- :class:`FixedSizeBatcher` (`batch_size`): batches of `batch_size` samples, or of the sizes a single pass
  planned; with `group_by_modality_length` (the original's `group_by_modality_length`), of similar length,
  multimodal and text-only apart.
- :class:`PackedBatcher` (`max_tokens_per_batch`): packed micro-batches of at most that many tokens
  (:mod:`lvlm.data.packing`), or the micro-batches a packed single pass planned (:mod:`lvlm.data.packed_pass`).

Each yields `(batch, is_filler)`: a filler is a zero-loss copy that keeps a planned count.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol

from lvlm.data.packed_pass import assemble
from lvlm.data.packing import pack_batches
from lvlm.data.sample_pipeline import PreparedSample
from lvlm.data.samplers import Draw
from lvlm.data.single_pass import ShardKeys, cut_batches

Prepare = Callable[[Iterator[dict[str, Any]]], Iterator[PreparedSample]]
"""Raw samples → prepared samples (bad ones reported and left out)."""
ReadRuns = Callable[[tuple[ShardKeys, ...]], Iterator[dict[str, Any]]]
"""The raw samples of `(url, keys)` runs, in order (a packed filler's)."""


class Batcher(Protocol):
    """What a training batcher does: cut a draw's prepared samples into `(batch, is_filler)`."""

    def batches(
        self, draw: Draw, prepare: Prepare, read_runs: ReadRuns, rng: random.Random
    ) -> Iterator[tuple[list[PreparedSample], bool]]: ...


def group_batches(
    samples: Iterator[PreparedSample], batch_size: int, rng: random.Random, by_modality_length: bool, buffer: int
) -> Iterator[list[PreparedSample]]:
    """Cuts a sample stream into batches.

    With `by_modality_length`, `buffer` batches' worth of samples are split into multimodal and text-only groups,
    each sorted by token length and cut into batches; the batches are shuffled and yielded, and incomplete
    remainders wait for the next buffer, so every batch has exactly `batch_size` samples.
    """
    if not by_modality_length:
        batch: list[PreparedSample] = []
        for sample in samples:
            batch.append(sample)
            if len(batch) == batch_size:
                yield batch
                batch = []
        return
    pending: dict[bool, list[PreparedSample]] = {True: [], False: []}
    exhausted = False
    while not exhausted:
        for _ in range(buffer * batch_size):
            sample = next(samples, None)
            if sample is None:
                exhausted = True
                break
            pending[bool(sample.media)].append(sample)
        ready: list[list[PreparedSample]] = []
        for group, items in pending.items():
            items.sort(key=lambda s: len(s.tokens))
            full = len(items) // batch_size * batch_size
            ready += [items[i : i + batch_size] for i in range(0, full, batch_size)]
            pending[group] = items[full:]
        rng.shuffle(ready)
        yield from ready


@dataclass(frozen=True)
class FixedSizeBatcher:
    """Batches of `batch_size` samples (or a single pass's planned sizes), padded by the collator.

    Args:
        batch_size: samples per batch.
        group_by_modality_length: batches of similar length, multimodal and text-only apart.
        group_buffer: batches' worth of samples sorted together when grouping.
    """

    batch_size: int
    group_by_modality_length: bool = False
    group_buffer: int = 16

    def batches(
        self, draw: Draw, prepare: Prepare, read_runs: ReadRuns, rng: random.Random
    ) -> Iterator[tuple[list[PreparedSample], bool]]:
        if draw.packed is not None:
            raise ValueError("a packed single pass needs the packed batcher (data.loader.max_tokens_per_batch)")
        samples, grouped = prepare(draw.samples), self.group_by_modality_length
        if draw.batch_sizes is None:
            cut = group_batches(samples, self.batch_size, rng, grouped, self.group_buffer)
        else:
            cut = cut_batches(samples, draw.batch_sizes, rng, grouped, self.group_buffer)
        return ((batch, False) for batch in cut)


@dataclass(frozen=True)
class PackedBatcher:
    """Packed micro-batches of at most `max_tokens` tokens (or a packed single pass's planned ones).

    Args:
        max_tokens: tokens per micro-batch.
        group_by_modality_length: pack multimodal and text-only samples apart.
    """

    max_tokens: int
    group_by_modality_length: bool = False

    def batches(
        self, draw: Draw, prepare: Prepare, read_runs: ReadRuns, rng: random.Random
    ) -> Iterator[tuple[list[PreparedSample], bool]]:
        samples = prepare(draw.samples)
        if draw.packed is not None:
            return assemble(samples, draw.packed, lambda runs: prepare(read_runs(runs)))
        packed = pack_batches(samples, self.max_tokens, rng, self.group_by_modality_length)
        return ((batch, False) for batch in packed)
