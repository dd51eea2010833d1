"""Samplers of the training stream: which raw samples one (rank, worker) reads in an epoch, and in what order.

A sampler is a small strategy that :class:`lvlm.data.train_stream.TrainStream` asks for a :class:`Draw` once per
epoch and worker; :mod:`lvlm.data.batchers` then cuts the draw into batches. `LVLMDataModule` picks one from
`data.sampling.mode` (and `data.loader.max_tokens_per_batch`):

- :class:`WeightedResampler` (`mode: resampled`): every (rank, worker) draws shards with replacement from the
  weighted sources, forever (WebDataset's `resampled=True` recipe with the seed made explicit), then shuffles.
- :class:`SinglePass` (`mode: single_pass`): every sample exactly once per epoch over all ranks and workers, cut
  into the planned batch sizes (:mod:`lvlm.data.single_pass`), shuffled within the worker's run.
- :class:`PackedSinglePass` (`mode: single_pass` with packing): the same, in planned micro-batches
  (:mod:`lvlm.data.packed_pass`), read in plan order.

Every random choice is seeded from `(seed, epoch, rank, worker)`, so the same settings give the same samples.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import webdataset as wds

from lvlm.data.length_index import ShardLengths
from lvlm.data.packed_pass import Bin, PackedWorkerPlan, plan_packed_worker
from lvlm.data.single_pass import ShardKeys, WorkerPlan, plan_worker, planned_samples

ShardReader = Callable[[str], Iterator[dict[str, Any]]]
"""Streams one shard's raw samples (bad shards reported, not raised)."""


def derive_seed(*parts: int) -> int:
    """A 32-bit seed mixed from integers (stable across processes, unlike `hash` of tuples)."""
    return int(np.random.SeedSequence([int(p) & 0xFFFFFFFF for p in parts]).generate_state(1)[0])


@dataclass(frozen=True)
class WorkerSlot:
    """The stream one DataLoader worker of one rank produces in one epoch."""

    seed: int
    epoch: int
    rank: int
    world_size: int
    worker: int
    num_workers: int

    def rng(self, *purpose: int) -> random.Random:
        """A generator of its own for each purpose (2: a source's shards, 3: the mix, 4: shuffling, 5: batching)."""
        return random.Random(derive_seed(self.seed, self.epoch, self.rank, self.worker, *purpose))


@dataclass(frozen=True)
class Draw:
    """A worker's samples for an epoch.

    Attributes:
        samples: raw samples in reading order (endless for the resampled stream).
        batch_sizes: planned samples per batch (single pass), None to cut freely.
        packed: planned micro-batches (packed single pass), None otherwise.
    """

    samples: Iterator[dict[str, Any]]
    batch_sizes: tuple[int, ...] | None = None
    packed: PackedWorkerPlan | None = None


class Sampler(Protocol):
    """What a training sampler does: give a worker its samples for an epoch."""

    def draw(self, slot: WorkerSlot, read: ShardReader) -> Draw: ...


def resampled_urls(urls: Sequence[str], rng: random.Random) -> Iterator[str]:
    """Shard URLs drawn with replacement, forever."""
    while True:
        yield urls[rng.randrange(len(urls))]


def mix(streams: Sequence[Iterator[Any]], weights: Sequence[float], rng: random.Random) -> Iterator[Any]:
    """Draws the next sample from a source chosen with probability proportional to its weight."""
    indices = range(len(streams))
    while True:
        yield next(streams[rng.choices(indices, weights=weights)[0]])


def _shuffled(samples: Iterator[dict[str, Any]], buffer: int, slot: WorkerSlot) -> Iterator[dict[str, Any]]:
    return wds.filters.shuffle(buffer, rng=slot.rng(4))(samples)


@dataclass(frozen=True)
class WeightedResampler:
    """Endless weighted mix of shards drawn with replacement from each source, then a shuffle buffer.

    Args:
        sources: `(urls, weight, pattern)` per source.
        shuffle_buffer: samples held by the shuffle buffer (encoded media: mind the memory with long videos).
    """

    sources: tuple[tuple[tuple[str, ...], float, str], ...]
    shuffle_buffer: int

    def draw(self, slot: WorkerSlot, read: ShardReader) -> Draw:
        streams = [_source(urls, pattern, read, slot.rng(2, i)) for i, (urls, _, pattern) in enumerate(self.sources)]
        raw = mix(streams, [weight for _, weight, _ in self.sources], slot.rng(3))
        return Draw(_shuffled(raw, self.shuffle_buffer, slot))


def _source(urls: Sequence[str], pattern: str, read: ShardReader, rng: random.Random) -> Iterator[dict[str, Any]]:
    empty_in_a_row, limit = 0, max(20, 4 * len(urls))
    for url in resampled_urls(urls, rng):
        count = 0
        for sample in read(url):
            count += 1
            yield sample
        empty_in_a_row = 0 if count else empty_in_a_row + 1
        if empty_in_a_row >= limit:
            raise RuntimeError(f"data source {pattern!r}: {limit} shards in a row gave no sample; check the shards")


@dataclass(frozen=True)
class SinglePass:
    """Every sample once per epoch: the worker's planned run of samples, shuffled, with its planned batch sizes.

    Args:
        index: every training shard's sample keys (`LVLMDataModule.train_index`).
        batch_size: samples per batch (planned batches exceed it by at most one).
        shuffle_buffer: samples held by the shuffle buffer.
    """

    index: tuple[ShardKeys, ...]
    batch_size: int
    shuffle_buffer: int

    def draw(self, slot: WorkerSlot, read: ShardReader) -> Draw:
        plan = plan_worker(
            self.index,
            slot.seed,
            slot.epoch,
            slot.rank,
            slot.world_size,
            self.batch_size,
            slot.worker,
            slot.num_workers,
        )
        raw = planned_samples(plan, read)
        return Draw(_shuffled(raw, self.shuffle_buffer, slot), batch_sizes=plan.batch_sizes)


@dataclass(frozen=True)
class PackedSinglePass:
    """Every sample once per epoch in planned micro-batches, read in plan order (no shuffle: the plan is random).

    Args:
        index: every training sample's token length (`LVLMDataModule.packed_index`).
        bins: the micro-batches they pack into (`lvlm.data.packed_pass.index_bins`).
    """

    index: tuple[ShardLengths, ...]
    bins: tuple[tuple[Bin, ...], ...]

    def draw(self, slot: WorkerSlot, read: ShardReader) -> Draw:
        plan = plan_packed_worker(
            self.index, self.bins, slot.seed, slot.epoch, slot.rank, slot.world_size, slot.worker, slot.num_workers
        )
        return Draw(planned_samples(WorkerPlan(plan.reads, ()), read), packed=plan)
