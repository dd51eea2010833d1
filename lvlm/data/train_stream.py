"""The training stream: a sampler's raw samples → tokenize → a batcher's batches → decode → collate.

Every DataLoader worker of every rank runs its own stream, seeded from `(seed, epoch, rank, worker)`, so the same
settings give the same batches (which is what makes an exact mid-epoch resume possible). Which samples a worker
reads is its sampler's business (:mod:`lvlm.data.samplers`: the endless weighted resample, the exact single pass,
the packed single pass), how they are cut into batches its batcher's (:mod:`lvlm.data.batchers`: fixed size or
packed). WebDataset's own `resampled=True` mixes the pid, time and `os.urandom` into its seed and reads the rank
from the environment, which Lightning does not set for worker processes: here the rank and world size are given.
`TrainLoader` yields exactly `batches_per_epoch` batches on every rank.

Batches are formed from tokenized samples (lengths known, media still encoded) and decoded afterwards, so a
resumed loader fast-forwards by tokenizing, not decoding, the batches it has already delivered.

Bad samples are skipped and reported (:mod:`lvlm.data.report`); a run of `max_consecutive_bad_samples` of them
with no usable sample between stops the stream with an error naming the report (shards that are all bad would
otherwise be resampled forever).
"""

from __future__ import annotations

import copy
import itertools
import logging
from collections.abc import Iterator
from typing import Any

import torch.utils.data
import webdataset as wds

from lvlm.data.batchers import Batcher
from lvlm.data.collate import Collator
from lvlm.data.decoding.errors import MediaDecodeError
from lvlm.data.packing import PackingCollator
from lvlm.data.report import BadSampleReport
from lvlm.data.sample_errors import BadSampleError
from lvlm.data.sample_pipeline import PreparedSample, SampleProcessor
from lvlm.data.samplers import Sampler, WorkerSlot, derive_seed
from lvlm.data.shard_io import read_shards
from lvlm.data.single_pass import ShardKeys, WorkerPlan, planned_samples

log = logging.getLogger(__name__)


class TrainStream(torch.utils.data.IterableDataset):
    """Endless (or planned) stream of collated training batches for one rank; each worker yields its own batches.

    Args:
        sampler: which raw samples a worker reads (:mod:`lvlm.data.samplers`).
        batcher: how they are cut into batches (:mod:`lvlm.data.batchers`).
        processor: sample processor in `"train"` mode.
        collator: right-padding collator, or the packing collator (with the packed batcher).
        report: bad-sample report of this rank.
        seed: base seed.
        rank: this rank.
        world_size: number of ranks.
        epoch: the epoch it streams.
        skip_batches: batches of that epoch already delivered (a resume: replayed without decoding).
    """

    def __init__(
        self,
        sampler: Sampler,
        batcher: Batcher,
        processor: SampleProcessor,
        collator: Collator | PackingCollator,
        report: BadSampleReport,
        seed: int,
        rank: int = 0,
        world_size: int = 1,
        epoch: int = 0,
        skip_batches: int = 0,
    ) -> None:
        super().__init__()
        self.sampler, self.batcher, self.processor, self.collator = sampler, batcher, processor, collator
        self.report, self.seed, self.rank, self.world_size = report, seed, rank, world_size
        self.epoch, self.skip_batches = epoch, skip_batches
        self.bad_batches = 0  # batches skipped because every sample was bad (logged a few times, then counted)

    def at(self, epoch: int, skip_batches: int) -> TrainStream:
        """The same stream positioned at `epoch`, with its first `skip_batches` batches replayed unseen."""
        positioned = copy.copy(self)
        positioned.epoch, positioned.skip_batches = epoch, skip_batches
        return positioned

    def __iter__(self) -> Iterator[dict[str, Any]]:
        info = torch.utils.data.get_worker_info()
        num_workers = 1 if info is None else info.num_workers
        # After a resume that skipped `skip_batches`, worker w plays the part of worker (w + skip) % num_workers
        # so the DataLoader's round-robin order continues exactly where it stopped.
        worker = ((0 if info is None else info.id) + self.skip_batches) % num_workers
        skip = len(range(worker, self.skip_batches, num_workers))
        slot = WorkerSlot(self.seed, self.epoch, self.rank, self.world_size, worker, num_workers)
        draw = self.sampler.draw(slot, self._read)
        batches = self.batcher.batches(draw, self._prepared, self._read_runs, slot.rng(5))
        previous = None
        for index in itertools.count():
            self.report.muted = index < skip  # replayed batches were reported before the interruption
            batch, filler = next(batches, (None, False))
            if batch is None:
                return
            if index < skip:
                continue
            # Augmentation is seeded per batch, so replayed (never decoded) batches do not shift its random state.
            self.processor.reseed(derive_seed(self.seed, self.epoch, self.rank, worker, 1, index))
            collated = self._load(batch)
            if collated is None and draw.packed is not None and previous is not None:
                collated, filler = previous, True  # keep the planned count: a zero-loss repeat
            if collated is not None:
                previous = collated
                yield {**collated, "filler": True} if filler else collated

    def _read(self, url: str) -> Iterator[dict[str, Any]]:
        return read_shards([url], self.report.shard_error)

    def _read_runs(self, runs: tuple[ShardKeys, ...]) -> Iterator[dict[str, Any]]:
        return planned_samples(WorkerPlan(runs, ()), self._read)

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
    used in it; after `load_state_dict`, the next iteration rebuilds the same streams and skips (tokenizes without
    decoding) the used batches, so the following batches equal those of an uninterrupted run provided the
    settings in `resume_settings` and the worker count are unchanged (augmentation included: it is seeded per
    batch). Not exact: if a worker dropped a whole batch (every sample undecodable) before the resume point, that
    worker's later batches shift by one; bad samples met while replaying are not reported again, and those met in
    batches prefetched but never trained on before the interruption are reported twice.

    Args:
        dataset: the rank's training stream.
        batches_per_epoch: batches per epoch on every rank.
        loader_kwargs: `num_workers`, `prefetch_factor`, `pin_memory` for the DataLoader.
        resume_settings: the settings an exact resume depends on (seed, world size, batch size...), recorded in
            `state_dict` and compared on `load_state_dict`.
        count_trained: the resume point counts batches trained on (`mark_trained`, under a Trainer), not those
            delivered (prefetched ones included).
    """

    def __init__(
        self,
        dataset: TrainStream,
        batches_per_epoch: int,
        loader_kwargs: dict[str, Any],
        resume_settings: dict[str, Any],
        count_trained: bool = False,
    ) -> None:
        self.dataset, self.batches_per_epoch, self.loader_kwargs = dataset, batches_per_epoch, loader_kwargs
        self.resume_settings = {**resume_settings, "num_workers": loader_kwargs.get("num_workers", 0)}
        self.epoch, self.delivered, self.trained = 0, 0, 0
        self.count_trained = count_trained

    def __len__(self) -> int:
        return self.batches_per_epoch

    def __iter__(self) -> Iterator[dict[str, Any]]:
        start = self.position
        self.delivered = self.trained = start
        loader = wds.WebLoader(self.dataset.at(self.epoch, start), batch_size=None, **self.loader_kwargs)
        for batch in loader.with_epoch(self.batches_per_epoch - start):
            self.delivered += 1
            yield batch
        self.epoch, self.delivered, self.trained = self.epoch + 1, 0, 0

    def mark_trained(self) -> None:
        """One more batch reached `training_step`."""
        self.trained += 1

    @property
    def position(self) -> int:
        """Batches of the current epoch already used: trained on (under a Trainer) or delivered."""
        return self.trained if self.count_trained else self.delivered

    def state_dict(self) -> dict[str, Any]:
        """The resume point: epoch, batches used, and the settings an exact resume depends on."""
        return {"epoch": self.epoch, "batches": self.position, **self.resume_settings}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restores the resume point; warns when a setting changed (batches then differ from the original run)."""
        changed = [k for k, v in self.resume_settings.items() if state.get(k) != v]
        if changed:
            log.warning("resuming the training stream with changed %s: the batches will not repeat exactly", changed)
        # A checkpoint taken after the epoch's last batch but before the loader ran out starts the next epoch.
        epochs, batches = divmod(int(state["batches"]), max(1, self.batches_per_epoch))
        self.epoch = int(state["epoch"]) + epochs
        self.delivered = self.trained = batches
