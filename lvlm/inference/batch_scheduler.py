"""A scheduler thread that batches concurrent requests into shared forward passes (continuous batching).

Requests are prepared (media decoded, prompt tokenized) in their own threads and queued here. When nothing runs,
the scheduler takes the first queued request and waits a short window for others that arrived with it (and for
those still being prepared); they start a :class:`~lvlm.models.generation.decoding_batch.DecodingBatch`. While
it runs, new requests join it between decoding steps and finished ones leave it at once. A joining request's
prefill (towers and the LLM over its whole prompt: tens of milliseconds on a CPU, far longer than a decoding step)
runs on a second thread while the running rows go on decoding, and its rows join at the first step boundary after
it is done; torch releases the interpreter lock inside its kernels, so on a machine with a second core the two
overlap. Requests that queue meanwhile are prefilled together next, in passes of at most ``prefill_tokens`` prompt
positions; the first pass of a new batch runs on the scheduler's thread and the rest join as above. Every request
can share the batch: each row has its own temperature, top-p and random generator, so a seeded request gives the
same answer alone or batched. The batch's state (rows, cache, answers) is only ever touched by the scheduler's
thread.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter, deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field

from lvlm.data.collate import ProcessedSample
from lvlm.inference.batch_generate import collate_for_generation, media_inputs
from lvlm.inference.session import InferenceSession
from lvlm.models.generation.answer import Answer
from lvlm.models.generation.decoding_batch import DecodingBatch, Prefill

log = logging.getLogger(__name__)


class SchedulerClosedError(RuntimeError):
    """The scheduler is shutting down and takes no new requests."""


@dataclass(eq=False)  # identity: the queue removes exactly this request (its tensors have no truth value)
class QueuedRequest:
    """A prepared prompt waiting for its batch; ``future`` resolves to its finished :class:`Answer`."""

    sample: ProcessedSample
    row: Answer
    future: Future = field(default_factory=Future)


class BatchScheduler:
    """Runs queued requests in batches on one thread.

    Args:
        session: the loaded checkpoint.
        max_batch_size: most rows decoding at once.
        window_s: how long the first request of a batch waits for others.
        max_wait_s: how long it waits at most for requests that arrived but are still being prepared.
        overlap_prefill: prefill joining requests on a second thread while the running rows go on decoding
            (False: between two decoding steps, which wait for it).
        prefill_tokens: most prompt positions (requests times the longest prompt) per prefill; at least one
            request. Requests beyond it are prefilled next, so that rows start decoding sooner and short prompts
            are not padded to a long one's length (a CPU's prefill costs per position, batched or not).
    """

    def __init__(
        self,
        session: InferenceSession,
        max_batch_size: int = 8,
        window_s: float = 0.02,
        max_wait_s: float = 0.25,
        overlap_prefill: bool = True,
        prefill_tokens: int = 1024,
    ) -> None:
        self.session = session
        self.max_batch_size = max_batch_size
        self.window_s = window_s
        self.max_wait_s = max(max_wait_s, window_s)
        self.prefill_tokens = prefill_tokens
        self.tokenizer_lock = threading.Lock()
        self.requests = 0  # queued so far
        self.batch_sizes: Counter[int] = Counter()  # rows in a forward pass -> how many passes had that many
        self.prefill_sizes: Counter[int] = Counter()  # requests in a prefill -> how many prefills had that many
        self._queue: deque[QueuedRequest] = deque()
        self._preparing = 0
        self._closed = False
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._run, name="lvlm-batch-scheduler", daemon=True)
        self._prefill_thread = ThreadPoolExecutor(1, "lvlm-prefill") if overlap_prefill else None
        self._pending: tuple[list[QueuedRequest], Future] | None = None  # requests being prefilled, their prefill

    def start(self) -> None:
        self._thread.start()

    @contextmanager
    def arriving(self) -> Iterator[None]:
        """Mark a request as being prepared, so a batch about to start waits for it (up to ``max_wait_s``)."""
        with self._cond:
            self._preparing += 1
        try:
            yield
        finally:
            with self._cond:
                self._preparing -= 1
                self._cond.notify_all()

    def submit(self, sample: ProcessedSample, row: Answer) -> Future:
        """Queue a prepared prompt and its answer (with its settings); the future gives the finished answer (or the
        exception generation raised)."""
        request = QueuedRequest(sample, row)
        with self._cond:
            if self._closed:
                raise SchedulerClosedError("the server is shutting down")
            self._queue.append(request)
            self.requests += 1
            self._cond.notify_all()
        return request.future

    def close(self) -> None:
        """Finish every queued request, then stop the thread."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        if self._thread.is_alive():
            self._thread.join()
        if self._prefill_thread is not None:
            self._prefill_thread.shutdown()

    def _run(self) -> None:
        try:
            self._loop()
        except BaseException as err:  # a bug here must not leave requests waiting forever
            log.exception("the batch scheduler stopped")
            with self._cond:
                self._closed = True
                failed, self._queue = list(self._queue), deque()
            _fail([*failed, *(self._pending[0] if self._pending else [])], err)
            raise

    def _loop(self) -> None:
        running: DecodingBatch | None = None
        while True:
            if running is None:
                joining = self._next_batch()
                if joining is None:
                    return
                session = self.session
                running = DecodingBatch(
                    session.model, session.tokenizer, session.max_length, _resolve, self.tokenizer_lock,
                    self.max_batch_size,
                )  # fmt: skip
                self._join(running, joining, self._prefill(running, joining))  # nothing runs to overlap with
            else:
                self._join_ready(running)
                if self._pending is None:
                    self._start_prefill(running)
            running = self._advance(running)

    def _start_prefill(self, running: DecodingBatch) -> None:
        """Hand queued requests to the prefill thread, up to the batch's room."""
        room = self.max_batch_size - len(running)
        with self._cond:
            joining = self._take(room) if room > 0 else []
        if not joining:
            return
        if self._prefill_thread is None:  # prefill on this thread, between steps
            self._join(running, joining, self._prefill(running, joining))
            return
        self._pending = (joining, self._prefill_thread.submit(self._prefill, running, joining))

    def _join_ready(self, running: DecodingBatch) -> None:
        """Join the pending prefill if it is done, or wait for it when no row is left to step meanwhile."""
        if self._pending is None:
            return
        joining, future = self._pending
        if len(running) and not future.done():
            return
        self._pending = None
        self._join(running, joining, future.result())  # _prefill returns its error rather than raising it

    def _prefill(self, running: DecodingBatch, joining: list[QueuedRequest]) -> Prefill | Exception:
        """Run on the prefill thread when one overlaps decoding; an error is returned for :meth:`_join` to report."""
        try:
            batch = collate_for_generation(self.session, [r.sample for r in joining])
            return running.prefill(batch["input_ids"], batch["attention_mask"], media_inputs(self.session, batch))
        except Exception as err:  # noqa: BLE001 - a failed prefill fails its requests, never the running rows
            log.exception("prefill failed for %d requests", len(joining))
            return err

    def _join(self, running: DecodingBatch, joining: list[QueuedRequest], prefill: Prefill | Exception) -> None:
        self.batch_sizes[len(joining)] += 1
        self.prefill_sizes[len(joining)] += 1
        if isinstance(prefill, Exception):
            _fail(joining, prefill)
            return
        try:
            running.join(prefill, [r.row for r in joining], joining)
        except Exception as err:  # noqa: BLE001 - the batch's cache is in doubt: its rows fail, never the server
            log.exception("joining failed for %d requests", len(joining))
            _fail([*running.owners, *joining], err)
            running.abandon()

    def _advance(self, running: DecodingBatch) -> DecodingBatch | None:
        """One decoding step; None once no row is left and none is being prefilled (or the batch failed)."""
        try:
            if len(running):
                self.batch_sizes[len(running)] += 1
                running.step()
        except Exception as err:  # noqa: BLE001 - a failed batch fails its requests, never the server
            log.exception("generation failed for a batch of %d", len(running))
            pending, self._pending = self._pending, None
            _fail([*running.owners, *(pending[0] if pending else [])], err)
            return None
        return running if len(running) or self._pending is not None else None

    def _next_batch(self) -> list[QueuedRequest] | None:
        with self._cond:
            while not self._queue:
                if self._closed:
                    return None
                self._cond.wait()
            start = time.monotonic()
            while len(self._queue) < self.max_batch_size and not self._closed:
                waited = time.monotonic() - start
                limit = self.max_wait_s if self._preparing else self.window_s
                if waited >= limit:
                    break
                self._cond.wait(limit - waited)
            return self._take(self.max_batch_size)

    def _take(self, room: int) -> list[QueuedRequest]:
        """Up to ``room`` queued requests for one prefill, oldest first, within ``prefill_tokens`` (called with the
        lock held)."""
        batch: list[QueuedRequest] = []
        longest = 0
        for request in self._queue:
            if len(batch) == room:
                break
            length = max(longest, int(request.sample.input_ids.shape[0]))
            if batch and length * (len(batch) + 1) > self.prefill_tokens:  # left-padded to the longest
                break
            batch.append(request)
            longest = length
        for request in batch:
            self._queue.remove(request)
        return batch


def _fail(requests: list[QueuedRequest], err: Exception) -> None:
    for request in requests:
        if not request.future.done():
            request.future.set_exception(err)


def _resolve(request: QueuedRequest) -> None:
    if not request.future.done():
        request.future.set_result(request.row)
