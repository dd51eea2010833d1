"""Worker processes that convert records, results in input order, surviving a worker that dies.

A worker can die without a Python exception: the kernel's out-of-memory killer, a signal, a crash inside a
decoder library. The batches that were in flight are then run again in a fresh pool; a batch that kills its
worker again is run one record per process, and a record that still kills its process is skipped with reason
``worker_crashed``. The other records' results are the same as if nothing had happened.
"""

from __future__ import annotations

import multiprocessing
import os
from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from lvlm.core.worker_lifetime import end_with_parent
from lvlm.data.records import Record
from lvlm.data.shards import SkippedSample, convert_safely

Outcome = dict[str, Any] | SkippedSample
Item = tuple[Any, str]  # (record value, key)


class ConversionPool:
    """``workers`` processes running :func:`lvlm.data.shards.convert_safely` with fixed options.

    Args:
        workers: Number of processes.
        options: Keyword arguments of ``convert_safely`` (folders, re-encoding, frames).
    """

    def __init__(self, workers: int, options: dict[str, Any]) -> None:
        self.workers, self.options = workers, options
        methods = multiprocessing.get_all_start_methods()
        self.context = multiprocessing.get_context("fork" if "fork" in methods else "spawn")
        self.pool = self._new_pool(workers)

    def _new_pool(self, workers: int) -> ProcessPoolExecutor:
        setup = (self.options, os.getpid())
        return ProcessPoolExecutor(workers, mp_context=self.context, initializer=_init, initargs=setup)

    def submit(self, items: list[Item]) -> Future[list[Outcome]]:
        """Start converting a batch (a dead pool is replaced first)."""
        try:
            return self.pool.submit(_convert_batch, items)
        except BrokenProcessPool:
            self.pool.shutdown(wait=False, cancel_futures=True)
            self.pool = self._new_pool(self.workers)
            return self.pool.submit(_convert_batch, items)

    def result(self, items: list[Item], future: Future[list[Outcome]]) -> list[Outcome]:
        """The outcomes of a batch; if its worker died, the batch is run again (see the module docstring)."""
        try:
            return future.result()
        except BrokenProcessPool:
            pass
        try:
            return self.submit(items).result()
        except BrokenProcessPool:
            return [self._alone(item) for item in items]

    def _alone(self, item: Item) -> Outcome:
        single = self._new_pool(1)
        try:
            return single.submit(_convert_batch, [item]).result()[0]
        except BrokenProcessPool:
            return SkippedSample("worker_crashed", "the process converting this record died (killed, out of memory?)")
        finally:
            single.shutdown(wait=True, cancel_futures=True)

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)


def ordered_outcomes(
    records: Sequence[Record], options: dict[str, Any], workers: int, batch: int | None = None
) -> Iterator[tuple[Record, Outcome]]:
    """``(record, outcome)`` for every record, in order, converted by ``workers`` processes.

    Records with a known problem are not sent. At most ``4 x workers`` batches are in flight, which bounds the
    memory that converted but not yet written samples take.
    """
    batch = batch or max(1, min(16, len(records) // (8 * workers)))
    pool = ConversionPool(workers, options)
    in_flight: deque[tuple[Sequence[Record], list[Item], Future[list[Outcome]]]] = deque()

    def collect() -> Iterator[tuple[Record, Outcome]]:
        chunk, items, future = in_flight.popleft()
        results = iter(pool.result(items, future))
        for record in chunk:
            yield record, record.problem or next(results)

    try:
        for begin in range(0, len(records), batch):
            chunk = records[begin : begin + batch]
            items = [(r.value, r.key) for r in chunk if r.problem is None]
            in_flight.append((chunk, items, pool.submit(items)))
            if len(in_flight) >= 4 * workers:
                yield from collect()
        while in_flight:
            yield from collect()
    finally:
        pool.close()


_OPTIONS: dict[str, Any] = {}


def _init(options: dict[str, Any], parent: int) -> None:
    end_with_parent(parent)  # a kill -9 of the converting process ends its workers too
    _OPTIONS.clear()
    _OPTIONS.update(options)


def _convert_batch(items: list[Item]) -> list[Outcome]:
    return [convert_safely(value, key, **_OPTIONS) for value, key in items]
