"""The exact single pass with packing: every sample once per epoch, in token-budget micro-batches, the same
number of micro-batches on every rank.

The plan is made from the token lengths read at start-up (:mod:`lvlm.data.length_index`), so every rank computes
the same plan without talking to the others:

1. Bins, once: each shard's samples, in tar order, are packed window by window (`window` samples)
   first-fit-decreasing under `max_tokens`; the emptiest bin of a window waits for the next window of the same
   shard, so bins stay nearly full (as in :func:`lvlm.data.packing.pack_batches`). With `by_modality`,
   multimodal and text-only samples are packed apart. The bins do not depend on the epoch, so neither does
   their number `B`.
2. Each epoch, the shard order is shuffled with `(seed, epoch)`, and the bins of each window are shuffled.
   Rank `r` takes the contiguous bins `[r B / w, (r + 1) B / w)`: counts differ by at most one. Every rank
   delivers `k = ceil(B / w)` micro-batches; a rank with one bin fewer ends with one *filler*: a copy of its
   last bin (of the epoch's first bin if it has none) marked `filler`, which the training step runs with zero
   loss so that every rank takes part in the same collectives and no sample counts twice. At most one filler
   per rank per epoch, so at most `w - 1` micro-batches of an epoch train nothing.
3. Worker `w` of a rank takes a contiguous run of the rank's micro-batches (the lower workers one more, as in
   :mod:`lvlm.data.single_pass`), so the DataLoader's round robin delivers the rank's micro-batches as one
   sequence that a mid-epoch resume skips through. A worker reads the shards its bins lie in sequentially and
   yields each bin once all its samples have arrived (it holds at most about a window of samples).

Which samples share a micro-batch is fixed (the bins do not change between epochs); their order does.

Legend: `B` bins in the epoch, `w` ranks, `k` micro-batches per rank, `n` samples of a shard.
"""

from __future__ import annotations

import logging
import math
import random
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

from lvlm.data.length_index import ShardLengths
from lvlm.data.packing import first_fit_decreasing
from lvlm.data.sample_pipeline import PreparedSample
from lvlm.data.single_pass import ShardKeys

log = logging.getLogger(__name__)

PACK_WINDOW = 64
"""Samples of a shard packed together (first-fit-decreasing over a window)."""

Bin = tuple[int, int, tuple[int, ...]]
"""`(shard, window, sample indices)`: a micro-batch of shard `shard` closed in `window`, indices ascending."""

Identity = tuple[str, str]
"""`(shard url, sample key)`."""


def shard_bins(shard: ShardLengths, max_tokens: int, by_modality: bool, window: int = PACK_WINDOW) -> list[Bin]:
    """The bins of one shard (shard number 0), in the order their windows close them."""
    pending: dict[bool, list[int]] = {True: [], False: []}
    out: list[Bin] = []
    n = len(shard.keys)
    for step, start in enumerate(range(0, n, window)):
        last = start + window >= n
        for i in range(start, min(n, start + window)):
            pending[shard.multimodal[i] if by_modality else True].append(i)
        for group, items in pending.items():
            bins = [[items[j] for j in b] for b in first_fit_decreasing([shard.lengths[i] for i in items], max_tokens)]
            bins.sort(key=lambda b: -sum(shard.lengths[i] for i in b))
            pending[group] = [] if last or not bins else bins.pop()
            out += [(0, step, tuple(sorted(b))) for b in bins]
    return out


def index_bins(index: Sequence[ShardLengths], max_tokens: int, by_modality: bool) -> list[list[Bin]]:
    """The bins of every shard of the index (shard numbers are index positions)."""
    too_long = [(s.url, k, n) for s in index for k, n in zip(s.keys, s.lengths) if n > max_tokens]
    if too_long:
        raise ValueError(f"packing: samples longer than max_tokens_per_batch ({max_tokens}): {too_long[:3]}")
    return [
        [(i, step, b) for _, step, b in shard_bins(shard, max_tokens, by_modality)] for i, shard in enumerate(index)
    ]


def epoch_bins(bins: Sequence[Sequence[Bin]], seed: int, epoch: int) -> list[Bin]:
    """All bins in the epoch's order: shards shuffled, then the bins of each window shuffled."""
    rng = random.Random(seed * 1_000_003 + epoch)
    order = list(range(len(bins)))
    rng.shuffle(order)
    out: list[Bin] = []
    for shard in order:
        windows: dict[int, list[Bin]] = {}
        for b in bins[shard]:
            windows.setdefault(b[1], []).append(b)
        for step in sorted(windows):
            rng.shuffle(windows[step])
            out += windows[step]
    return out


def micro_batches_per_rank(num_bins: int, world_size: int) -> int:
    """`k = ceil(B / w)`: micro-batches every rank delivers."""
    return math.ceil(num_bins / world_size)


@dataclass(frozen=True)
class PackedWorkerPlan:
    """What one (rank, worker) reads and yields.

    Attributes:
        reads: `(url, keys)` of its bins' samples, in reading order.
        bins: Each real micro-batch's samples, in delivery order.
        filler: The samples copied into a trailing filler micro-batch, or None (no filler).
        filler_reads: `(url, keys)` to read for the filler when it is not the worker's own last bin.
    """

    reads: tuple[ShardKeys, ...]
    bins: tuple[tuple[Identity, ...], ...]
    filler: tuple[Identity, ...] | None
    filler_reads: tuple[ShardKeys, ...]


def plan_packed_worker(
    index: Sequence[ShardLengths],
    bins: Sequence[Sequence[Bin]],
    seed: int,
    epoch: int,
    rank: int,
    world_size: int,
    worker: int,
    num_workers: int,
) -> PackedWorkerPlan:
    """The micro-batches of `worker` (of `num_workers`) on `rank` in `epoch` (see the module docstring)."""
    ordered = epoch_bins(bins, seed, epoch)
    total = len(ordered)
    if total == 0:
        raise ValueError("single pass with packing: the sources hold no usable sample; check the bad-sample report")
    k = micro_batches_per_rank(total, world_size)
    lo, hi = rank * total // world_size, (rank + 1) * total // world_size
    slots: list[int | None] = [*range(lo, hi), *[None] * (k - (hi - lo))]
    counts = [math.ceil((k - w) / num_workers) for w in range(num_workers)]
    begin = sum(counts[:worker])
    mine = slots[begin : begin + counts[worker]]
    real = [ordered[b] for b in mine if b is not None]
    filler = None
    if None in mine:
        filler = ordered[hi - 1] if hi > lo else ordered[0]
    shard_rank = {shard: position for position, shard in enumerate(dict.fromkeys(b[0] for b in ordered))}
    positions = sorted(((b[0], i) for b in real for i in b[2]), key=lambda p: (shard_rank[p[0]], p[1]))
    return PackedWorkerPlan(
        reads=_runs(index, positions),
        bins=tuple(_identities(index, b) for b in real),
        filler=None if filler is None else _identities(index, filler),
        filler_reads=() if filler is None else _runs(index, [(filler[0], i) for i in filler[2]]),
    )


def _identities(index: Sequence[ShardLengths], b: Bin) -> tuple[Identity, ...]:
    shard = index[b[0]]
    return tuple((shard.url, shard.keys[i]) for i in b[2])


def _runs(index: Sequence[ShardLengths], positions: Sequence[tuple[int, int]]) -> tuple[ShardKeys, ...]:
    """`(url, keys)` runs of `(shard, sample)` positions given in reading order."""
    runs: list[tuple[str, list[str]]] = []
    previous = None
    for shard, i in positions:
        if shard != previous:
            runs.append((index[shard].url, []))
            previous = shard
        runs[-1][1].append(index[shard].keys[i])
    return tuple((url, tuple(keys)) for url, keys in runs)


def assemble(
    samples: Iterator[PreparedSample],
    plan: PackedWorkerPlan,
    read_filler: Callable[[Sequence[ShardKeys]], Iterator[PreparedSample]],
) -> Iterator[tuple[list[PreparedSample], bool]]:
    """`(micro-batch, is_filler)` in the plan's order, from the worker's samples in reading order.

    A bin is yielded once all its samples have arrived, or, with some missing (an unreadable shard), once reading
    has passed them; a bin that lost every sample is replaced by a filler copy of the previous one (logged), so
    the count never changes.
    """
    order = {ident: i for i, ident in enumerate((url, key) for url, keys in plan.reads for key in keys)}
    waiting = deque(plan.bins)
    arrived: dict[Identity, PreparedSample] = {}
    last: list[PreparedSample] | None = None

    def take(bin_: tuple[Identity, ...]) -> tuple[list[PreparedSample], bool]:
        nonlocal last
        batch = [arrived.pop(ident) for ident in bin_ if ident in arrived]
        if batch:
            last = batch
            return batch, False
        if last is None:
            raise RuntimeError("single pass with packing: a worker found no usable sample; check the bad-sample report")
        log.warning("packed single pass: a micro-batch lost every sample; a zero-loss copy of the previous one runs")
        return last, True

    for sample in samples:
        ident = (sample.url, sample.key)
        if ident not in order:
            continue
        arrived[ident] = sample
        position = order[ident]
        while waiting and all(i in arrived or order[i] < position for i in waiting[0]):
            yield take(waiting.popleft())
    while waiting:
        yield take(waiting.popleft())
    if plan.filler is not None:
        if last is not None and [(s.url, s.key) for s in last] == list(plan.filler):
            yield last, True
        else:
            copy = list(read_filler(plan.filler_reads))
            yield (copy, True) if copy else take(())
