"""The finite evaluation stream: every sample of a fixed set exactly once over all ranks, deterministic order.

The set is indexed once (sample keys listed from the tar headers, no data read). The global order is split into
contiguous per-rank ranges, and each range into the same number of batches on every rank (sizes differ by at
most one), so no rank waits at a collective for another. No sample is repeated to even the ranks out. Within a
rank, batch `i` comes from worker `i % num_workers`, matching the DataLoader's round-robin order.
"""

from __future__ import annotations

import logging
import math
from collections import Counter, defaultdict
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch.utils.data

from lvlm.data.collate import Collator
from lvlm.data.decoding.errors import MediaDecodeError
from lvlm.data.eval_samples import read_samples, sample_keys
from lvlm.data.report import BadSampleReport
from lvlm.data.sample_errors import BadSampleError
from lvlm.data.sample_pipeline import SampleProcessor

log = logging.getLogger(__name__)

SampleRef = tuple[str, str]
"""`(shard url, sample key)`."""


def build_index(urls: Sequence[str], report: BadSampleReport) -> list[SampleRef]:
    """Lists every sample of the shards, in order, reading only tar headers.

    A key that appears more than once (in one shard or in several) is listed once per copy, so every copy is
    evaluated, and reported (`duplicate_key`, by rank 0) since downstream results are matched by key.
    """
    index = [(url, key) for url in urls for key in sample_keys(url, report.shard_error)]
    if report.rank == 0:
        places: dict[str, list[str]] = defaultdict(list)
        for url, key in index:
            places[key].append(url)
        for key, where in places.items():
            if len(where) > 1:
                detail = f"key {key!r} appears {len(where)} times ({', '.join(sorted(set(where)))}); every copy is "
                report.record(key, "duplicate_key", detail + "evaluated, but keys should be unique", where[0])
    return index


def partition(num_samples: int, world_size: int, rank: int, batch_size: int) -> list[list[int]]:
    """The global sample indices of each of this rank's batches.

    Every rank gets `ceil(ceil(n / world_size) / batch_size)` batches; a rank with too few samples for that
    (only when n is tiny) gets fewer and a warning.
    """
    start, end = rank * num_samples // world_size, (rank + 1) * num_samples // world_size
    num_batches = math.ceil(math.ceil(num_samples / world_size) / batch_size)
    if num_batches == 0:
        return []
    chunks = [c.tolist() for c in np.array_split(np.arange(start, end), num_batches)]
    if any(len(c) == 0 for c in chunks):
        log.warning(
            "rank %d: %d evaluation samples over %d ranks leave this rank fewer batches than the others",
            rank,
            num_samples,
            world_size,
        )
    return [c for c in chunks if c]


class EvalStream(torch.utils.data.IterableDataset):
    """Collated batches of one rank's share of a fixed evaluation set.

    Args:
        index: Every sample of the set, in order (from `build_index`).
        processor: Sample processor (`"train"` mode for validation loss, `"prompt"` for generation).
        collator: Collator (right padding for loss, left padding for generation).
        batch_size: Samples per batch (upper bound).
        rank: This process's global rank.
        world_size: Number of ranks.
        report: Bad-sample report of this rank.
    """

    def __init__(
        self,
        index: Sequence[SampleRef],
        processor: SampleProcessor,
        collator: Collator,
        batch_size: int,
        rank: int,
        world_size: int,
        report: BadSampleReport,
    ) -> None:
        super().__init__()
        self.index, self.processor, self.collator, self.report = list(index), processor, collator, report
        self.batches = partition(len(self.index), world_size, rank, batch_size)

    def __len__(self) -> int:
        return len(self.batches)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        info = torch.utils.data.get_worker_info()
        worker, num_workers = (0, 1) if info is None else (info.id, info.num_workers)
        mine = self.batches[worker::num_workers]
        if not mine:
            return
        # the n-th copy of a repeated key is the n-th place it holds in the index: copies are never merged
        places: dict[SampleRef, list[int]] = defaultdict(list)
        for position, ref in enumerate(self.index):
            places[ref].append(position)
        batch_of = {i: b for b, batch in enumerate(mine) for i in batch}
        copies: Counter[SampleRef] = Counter()
        urls = list(dict.fromkeys(self.index[i][0] for batch in mine for i in batch))
        done: list[dict[int, Any]] = [{} for _ in mine]
        next_batch = 0
        for raw in read_samples(urls, self.report.shard_error):
            ref = (str(raw.get("__url__", "")), str(raw.get("__key__", "")))
            copy = copies[ref]
            copies[ref] += 1
            if copy >= len(places.get(ref, ())):  # the shard changed since it was indexed
                self.report.record(ref[1], "not_indexed", "a sample not listed when the set was indexed", ref[0])
                continue
            i = places[ref][copy]
            if i not in batch_of:  # another rank's or another worker's sample
                continue
            b = batch_of[i]
            done[b][i] = self._process(raw)
            while next_batch < len(mine) and len(done[next_batch]) == len(mine[next_batch]):
                yield from self._collate(done[next_batch], mine[next_batch])
                done[next_batch] = {}
                next_batch += 1
        for b in range(next_batch, len(mine)):  # shards that could not be read leave batches incomplete
            yield from self._collate(done[b], mine[b])

    def _process(self, raw: dict[str, Any]) -> Any:
        try:
            return self.processor.load(self.processor.prepare(raw))
        except (BadSampleError, MediaDecodeError) as err:
            self.report.record_error(err, str(raw.get("__url__", "")))
            return None

    def _collate(self, done: dict[int, Any], order: list[int]) -> Iterator[dict[str, Any]]:
        samples = [done[i] for i in order if done.get(i) is not None]
        if samples:
            yield self.collator(samples)
        else:
            log.warning("an evaluation batch had no usable sample and is skipped (see the bad-sample report)")
