"""The exact single pass: every training sample exactly once per epoch over all ranks and workers.

The sources are indexed once (every shard's sample keys, from the tar headers). Each epoch, the shard order is
shuffled with `(seed, epoch)` and the concatenated sample sequence is cut into `world_size` contiguous ranges
(sizes differ by at most one). Every rank cuts its range into the same number of batches (sizes differ by at
most one, and exceed `batch_size` by at most one), so no rank waits at a collective for another, and gives
worker `w` a contiguous run of its batches, the lower workers one more when they do not divide evenly: the
DataLoader's round-robin order then delivers the rank's batches as one sequence, which is what the mid-epoch
resume skips through. Reading is sequential: a worker streams only the shards its samples lie in (the first
and last partly). A shuffle buffer mixes samples within the worker's run; with `group_by_modality_length`,
windows of batches are sorted by modality and length before they are cut.

Legend: `n` samples in the epoch, `w` ranks, `k` batches per rank.
"""

from __future__ import annotations

import logging
import math
import random
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from lvlm.data.sample_pipeline import PreparedSample

log = logging.getLogger(__name__)

ShardKeys = tuple[str, tuple[str, ...]]
"""`(shard url, sample keys in tar order)`."""


def batches_per_rank(num_samples: int, world_size: int, batch_size: int) -> int:
    """`k`: batches on every rank, `ceil(floor(n / w) / batch_size)`.

    Counted on the smallest rank range, so every batch holds at least one sample; a rank with one sample more
    may then have batches of `batch_size + 1` (when `batch_size` does not divide its range).
    """
    return math.ceil(num_samples // world_size / batch_size)


@dataclass(frozen=True)
class WorkerPlan:
    """What one (rank, worker) reads and how it cuts batches.

    Attributes:
        shards: `(url, keys)` of the samples it reads, in reading order (keys a subset of the shard's, in order).
        batch_sizes: Samples per batch, in delivery order; sum equals the number of keys.
    """

    shards: tuple[ShardKeys, ...]
    batch_sizes: tuple[int, ...]


def plan_worker(
    index: Sequence[ShardKeys],
    seed: int,
    epoch: int,
    rank: int,
    world_size: int,
    batch_size: int,
    worker: int,
    num_workers: int,
) -> WorkerPlan:
    """The samples and batch sizes of `worker` (of `num_workers`) on `rank` in `epoch`."""
    order = list(index)
    random.Random(seed * 1_000_003 + epoch).shuffle(order)
    num_samples = sum(len(keys) for _, keys in order)
    start, end = rank * num_samples // world_size, (rank + 1) * num_samples // world_size
    k = batches_per_rank(num_samples, world_size, batch_size)
    sizes = [len(chunk) for chunk in np.array_split(np.arange(end - start), k)] if k else []
    if num_samples < world_size:
        raise ValueError(
            f"single pass: {num_samples} samples cannot give each of {world_size} ranks a batch; check the sources"
        )
    first = [math.ceil((k - w) / num_workers) for w in range(num_workers)]  # batches of each worker
    begin_batch = sum(first[:worker])
    my_sizes = sizes[begin_batch : begin_batch + first[worker]]
    lo = start + sum(sizes[:begin_batch])
    hi = lo + sum(my_sizes)
    return WorkerPlan(_slice(order, lo, hi), tuple(my_sizes))


def _slice(order: Sequence[ShardKeys], lo: int, hi: int) -> tuple[ShardKeys, ...]:
    """The `(url, keys)` runs covering positions `[lo, hi)` of the concatenated sample sequence."""
    out, position = [], 0
    for url, keys in order:
        a, b = max(lo, position), min(hi, position + len(keys))
        if a < b:
            out.append((url, tuple(keys[a - position : b - position])))
        position += len(keys)
    return tuple(out)


def cut_batches(
    samples: Iterator[PreparedSample],
    sizes: Sequence[int],
    rng: random.Random,
    by_modality_length: bool,
    window: int,
) -> Iterator[list[PreparedSample]]:
    """Cuts a worker's samples into exactly `len(sizes)` batches of the planned sizes.

    With `by_modality_length`, each window of `window` batches takes its samples, sorts them multimodal
    first then by token length, cuts them into the window's sizes and shuffles the window's batch order (a
    batch may straddle the modality boundary). Samples dropped as bad shorten the last batches; a batch left
    with no sample repeats the worker's previous batch (logged), so the count never changes.
    """
    last: list[PreparedSample] | None = None
    step = window if by_modality_length else 1
    for first in range(0, len(sizes), step):
        window_sizes = sizes[first : first + step]
        taken = [s for s in (next(samples, None) for _ in range(sum(window_sizes))) if s is not None]
        if by_modality_length:
            taken.sort(key=lambda s: (not s.media, len(s.tokens)))
        cut, offset = [], 0
        for size in window_sizes:
            cut.append(taken[offset : offset + size])
            offset += size
        if by_modality_length:
            rng.shuffle(cut)
        for batch in cut:
            if not batch:
                if last is None:
                    raise RuntimeError("single pass: a worker found no usable sample; check the bad-sample report")
                log.warning("single pass: a batch lost every sample (bad samples); repeating the previous batch")
                batch = last
            last = batch
            yield batch


def planned_samples(plan: WorkerPlan, read: Callable[[str], Iterator[dict[str, Any]]]) -> Iterator[dict[str, Any]]:
    """The raw samples of a plan, in reading order; `read(url)` streams one shard's raw samples."""
    for url, keys in plan.shards:
        wanted = set(keys)
        for sample in read(url):
            if sample.get("__key__") in wanted:
                yield sample
