"""The training stream: resampled shards from weighted sources → shuffle → tokenize → batch → decode → collate.

Every DataLoader worker of every rank runs its own infinite stream, seeded from `(seed, epoch, rank, worker)`,
so the same settings give the same batches (which is what makes an exact mid-epoch resume possible). This is
WebDataset's `resampled=True` recipe with the seed made explicit: `WebDataset(resampled=True)` mixes the pid,
time and `os.urandom` into its shard sampler's seed and reads the rank from the environment, which Lightning
does not set for worker processes; here rank and world size are given by the DataModule. Because every
(rank, worker) resamples its own shards, no node split is needed and uneven shards cannot give ranks
different batch counts: `TrainLoader` yields exactly `batches_per_epoch` batches on every rank. With an `index`
(the exact single pass, :mod:`lvlm.data.single_pass`), each (rank, worker) instead reads its planned share of
the epoch's samples once, cut into the planned batches; with a `packed_index` (the single pass with packing,
:mod:`lvlm.data.packed_pass`), into the planned micro-batches, a trailing filler marked `filler`.

Batches are formed from tokenized samples (lengths known, media still encoded) and decoded afterwards, so a
resumed loader fast-forwards by tokenizing, not decoding, the batches it has already delivered.

Bad samples are skipped and reported (:mod:`lvlm.data.report`); a run of `max_consecutive_bad_samples` of them
with no usable sample between stops the stream with an error naming the report (shards that are all bad would
otherwise be resampled forever).
"""

from __future__ import annotations

import itertools
import logging
import random
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch.utils.data
import webdataset as wds

from lvlm.data.collate import Collator
from lvlm.data.decoding.errors import MediaDecodeError
from lvlm.data.length_index import ShardLengths
from lvlm.data.packed_pass import Bin, assemble, plan_packed_worker
from lvlm.data.packing import PackingCollator, pack_batches
from lvlm.data.report import BadSampleReport
from lvlm.data.sample_errors import BadSampleError
from lvlm.data.sample_pipeline import PreparedSample, SampleProcessor
from lvlm.data.shard_io import read_shards
from lvlm.data.single_pass import ShardKeys, WorkerPlan, cut_batches, plan_worker, planned_samples

log = logging.getLogger(__name__)


def derive_seed(*parts: int) -> int:
    """A 32-bit seed mixed from integers (stable across processes, unlike `hash` of tuples)."""
    return int(np.random.SeedSequence([int(p) & 0xFFFFFFFF for p in parts]).generate_state(1)[0])


def resampled_urls(urls: Sequence[str], rng: random.Random) -> Iterator[str]:
    """Shard URLs drawn with replacement, forever."""
    while True:
        yield urls[rng.randrange(len(urls))]


def mix(streams: Sequence[Iterator[Any]], weights: Sequence[float], rng: random.Random) -> Iterator[Any]:
    """Draws the next sample from a source chosen with probability proportional to its weight."""
    indices = range(len(streams))
    while True:
        yield next(streams[rng.choices(indices, weights=weights)[0]])


def group_batches(
    samples: Iterator[PreparedSample], batch_size: int, rng: random.Random, by_modality_length: bool, buffer: int
) -> Iterator[list[PreparedSample]]:
    """Cuts a sample stream into batches.

    With `by_modality_length` (spec §5.3), `buffer` batches' worth of samples are split into multimodal and
    text-only groups, each sorted by token length and cut into batches; the batches are shuffled and yielded,
    and incomplete remainders wait for the next buffer, so every batch has exactly `batch_size` samples.
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


class TrainStream(torch.utils.data.IterableDataset):
    """Infinite stream of collated training batches for one rank (each worker yields its own batches).

    Args:
        sources: `(urls, weight, pattern)` per source.
        processor: Sample processor in `"train"` mode.
        collator: Right-padding collator, or the packing collator (with `max_tokens_per_batch`).
        batch_size: Samples per batch.
        seed: Base seed.
        report: Bad-sample report of this rank.
        shuffle_buffer: Size of the sample shuffle buffer.
        group_by_modality_length: Form batches of similar length and modality (spec §5.3).
        group_buffer: Batches' worth of samples sorted together when grouping.
    """

    def __init__(
        self,
        sources: Sequence[tuple[Sequence[str], float, str]],
        processor: SampleProcessor,
        collator: Collator | PackingCollator,
        batch_size: int,
        seed: int,
        report: BadSampleReport,
        shuffle_buffer: int = 256,
        group_by_modality_length: bool = False,
        group_buffer: int = 16,
    ) -> None:
        super().__init__()
        self.sources, self.processor, self.collator = list(sources), processor, collator
        self.batch_size, self.seed, self.report = batch_size, seed, report
        self.shuffle_buffer, self.group_by_modality_length, self.group_buffer = (
            shuffle_buffer,
            group_by_modality_length,
            group_buffer,
        )
        self.rank, self.world_size = 0, 1
        self.epoch, self.skip_batches = 0, 0
        self.bad_batches = 0  # batches skipped because every sample was bad (logged a few times, then counted)
        self.index: list[ShardKeys] | None = None  # set for the exact single pass (see lvlm.data.single_pass)
        self.max_tokens_per_batch: int | None = None  # set to pack samples (see lvlm.data.packing)
        self.packed_index: list[ShardLengths] | None = None  # set for the packed single pass (lvlm.data.packed_pass)
        self.packed_bins: list[list[Bin]] | None = None  # its bins (`packed_pass.index_bins`), set with it

    def __iter__(self) -> Iterator[dict[str, Any]]:
        info = torch.utils.data.get_worker_info()
        num_workers = 1 if info is None else info.num_workers
        # After a resume that skipped `skip_batches`, worker w plays the part of worker (w + skip) % num_workers
        # so the DataLoader's round-robin order continues exactly where it stopped.
        worker = ((0 if info is None else info.id) + self.skip_batches) % num_workers
        skip = len(range(worker, self.skip_batches, num_workers))
        base = (self.seed, self.epoch, self.rank, worker)
        if self.packed_index is not None:
            batches = self._packed_batches(worker, num_workers)
        else:
            batches = ((batch, False) for batch in self._batches(base, worker, num_workers))
        previous = None
        for index in itertools.count():
            self.report.muted = index < skip  # replayed batches were reported before the interruption
            batch, filler = next(batches, (None, False))
            if batch is None:
                return
            if index < skip:
                continue
            # Augmentation is seeded per batch, so replayed (never decoded) batches do not shift its random state.
            self.processor.reseed(derive_seed(*base, 1, index))
            collated = self._load(batch)
            if collated is None and self.packed_index is not None and previous is not None:
                collated, filler = previous, True  # keep the planned count: a zero-loss repeat
            if collated is not None:
                previous = collated
                yield {**collated, "filler": True} if filler else collated

    def _batches(self, base: tuple[int, ...], worker: int, num_workers: int) -> Iterator[list[PreparedSample]]:
        """Batches of the resampled stream (padded or packed), or of the unpacked single pass."""
        if self.index is None:
            streams = [
                self._source_samples(urls, pattern, random.Random(derive_seed(*base, 2, i)))
                for i, (urls, _, pattern) in enumerate(self.sources)
            ]
            raw = mix(streams, [w for _, w, _ in self.sources], random.Random(derive_seed(*base, 3)))
        else:
            plan = plan_worker(
                self.index, self.seed, self.epoch, self.rank, self.world_size, self.batch_size, worker, num_workers
            )
            raw = planned_samples(plan, lambda url: read_shards([url], self.report.shard_error))
        shuffled = wds.filters.shuffle(self.shuffle_buffer, rng=random.Random(derive_seed(*base, 4)))(raw)
        prepared, rng = self._prepared(shuffled), random.Random(derive_seed(*base, 5))
        if self.max_tokens_per_batch is not None:
            return pack_batches(prepared, self.max_tokens_per_batch, rng, self.group_by_modality_length)
        if self.index is None:
            return group_batches(prepared, self.batch_size, rng, self.group_by_modality_length, self.group_buffer)
        return cut_batches(prepared, plan.batch_sizes, rng, self.group_by_modality_length, self.group_buffer)

    def _packed_batches(self, worker: int, num_workers: int) -> Iterator[tuple[list[PreparedSample], bool]]:
        """`(micro-batch, is_filler)` of the packed single pass (:mod:`lvlm.data.packed_pass`)."""
        assert self.packed_index is not None and self.packed_bins is not None
        plan = plan_packed_worker(
            self.packed_index, self.packed_bins, self.seed, self.epoch, self.rank, self.world_size, worker, num_workers
        )

        def read(runs: tuple[ShardKeys, ...]) -> Iterator[PreparedSample]:
            raw = planned_samples(WorkerPlan(runs, ()), lambda url: read_shards([url], self.report.shard_error))
            return self._prepared(raw)

        return assemble(read(plan.reads), plan, read)

    def _source_samples(self, urls: Sequence[str], pattern: str, rng: random.Random) -> Iterator[dict[str, Any]]:
        empty_in_a_row, limit = 0, max(20, 4 * len(urls))
        for url in resampled_urls(urls, rng):
            count = 0
            for sample in read_shards([url], self.report.shard_error):
                count += 1
                yield sample
            empty_in_a_row = 0 if count else empty_in_a_row + 1
            if empty_in_a_row >= limit:
                raise RuntimeError(f"data source {pattern!r}: {limit} shards in a row gave no sample; check the shards")

    def _prepared(self, raw_samples: Iterator[dict[str, Any]]) -> Iterator[PreparedSample]:
        for raw in raw_samples:
            try:
                yield self.processor.prepare(raw)
            except BadSampleError as err:
                self.report.record_error(err, str(raw.get("__url__", "")))

    def _load(self, batch: list[PreparedSample]) -> dict[str, Any] | None:
        samples = []
        for prepared in batch:
            try:
                samples.append(self.processor.load(prepared))
            except (BadSampleError, MediaDecodeError) as err:
                self.report.record_error(err, prepared.url)
        self.report.good(len(samples))
        if not samples:
            self.bad_batches += 1
            if self.bad_batches <= 5:  # bounded: the report counts them all
                log.warning("rank %d: every sample of a batch was bad; the batch is skipped", self.rank)
            return None
        return self.collator(samples)


class TrainLoader:
    """`wds.WebLoader(...).with_epoch(n)` over a `TrainStream`, with an epoch counter and mid-epoch resume.

    Every rank yields exactly `batches_per_epoch` batches per epoch. `state_dict` holds the epoch and the batches
    delivered in it; after `load_state_dict`, the next iteration rebuilds the same streams and skips (tokenizes
    without decoding) the delivered batches, so the following batches equal those of an uninterrupted run
    provided seed, world size, num_workers and batch size are unchanged (augmentation included: it is seeded per
    batch). Not exact: if a worker dropped a whole batch (every sample undecodable) before the resume point, that
    worker's later batches shift by one; bad samples met while replaying are not reported again, and those met in
    batches prefetched but never trained on before the interruption are reported twice.

    Args:
        dataset: The rank's training stream.
        batches_per_epoch: Batches per epoch on every rank.
        loader_kwargs: `num_workers`, `prefetch_factor`, `pin_memory` for the DataLoader.
    """

    def __init__(self, dataset: TrainStream, batches_per_epoch: int, loader_kwargs: dict[str, Any]) -> None:
        self.dataset, self.batches_per_epoch, self.loader_kwargs = dataset, batches_per_epoch, loader_kwargs
        self.epoch, self.delivered, self.trained = 0, 0, 0
        self.count_trained = False

    def __len__(self) -> int:
        return self.batches_per_epoch

    def __iter__(self) -> Iterator[dict[str, Any]]:
        start = self.position
        self.delivered = self.trained = start
        self.dataset.epoch, self.dataset.skip_batches = self.epoch, start
        loader = wds.WebLoader(self.dataset, batch_size=None, **self.loader_kwargs)
        for batch in loader.with_epoch(self.batches_per_epoch - start):
            self.delivered += 1
            yield batch
        self.epoch, self.delivered, self.trained = self.epoch + 1, 0, 0

    @property
    def position(self) -> int:
        """Batches of the current epoch already used: trained on (under a Trainer) or delivered."""
        return self.trained if self.count_trained else self.delivered

    def state_dict(self) -> dict[str, Any]:
        """The resume point: epoch, batches used, and the settings an exact resume depends on."""
        return {
            "epoch": self.epoch,
            "batches": self.position,
            "seed": self.dataset.seed,
            "world_size": self.dataset.world_size,
            "num_workers": self.loader_kwargs.get("num_workers", 0),
            "batch_size": self.dataset.batch_size,
            "max_tokens_per_batch": self.dataset.max_tokens_per_batch,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restores the resume point; warns when a setting changed (batches then differ from the original run)."""
        current = self.state_dict()
        settings = ("seed", "world_size", "num_workers", "batch_size", "max_tokens_per_batch")
        changed = [k for k in settings if state.get(k) != current[k]]
        if changed:
            log.warning("resuming the training stream with changed %s: the batches will not repeat exactly", changed)
        # A checkpoint taken after the epoch's last batch but before the loader ran out starts the next epoch.
        epochs, batches = divmod(int(state["batches"]), max(1, self.batches_per_epoch))
        self.epoch = int(state["epoch"]) + epochs
        self.delivered = self.trained = batches
