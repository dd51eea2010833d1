"""The judge interface: one question/answer/prediction in, a yes/no verdict and a 0-5 score out."""

from __future__ import annotations

import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class Judgment:
    """A verdict: ``pred`` is 'yes' or 'no', ``score`` an integer 0-5, ``raw`` the judge's reply text."""

    pred: str
    score: int
    raw: str = ""
    cached: bool = False


class JudgeError(RuntimeError):
    """One item could not be judged (transport errors or malformed replies beyond the retry budget)."""


class JudgeConfigError(RuntimeError):
    """The judge cannot work at all (bad URL, rejected key, unknown model): stop instead of failing every item."""


@dataclass
class JudgeStats:
    """Counters, updated from worker threads under a lock."""

    requests: int = 0
    retries: int = 0
    malformed: int = 0
    judged: int = 0
    failed: int = 0
    cache_hits: int = 0
    past_deadline: int = 0

    def __post_init__(self) -> None:
        self._lock = threading.Lock()

    def add(self, **counts: int) -> None:
        with self._lock:
            for name, n in counts.items():
                setattr(self, name, getattr(self, name) + n)

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


@dataclass(frozen=True)
class JudgeItem:
    """What is judged."""

    question: str
    answer: str
    prediction: str


class Judge(ABC):
    """Base class: subclasses implement :meth:`_judge` and :meth:`describe`; caching and counting live here.

    Args:
        cache: optional :class:`~lvlm.eval.judges.cache.JudgmentCache`; hits skip :meth:`_judge`.
        workers: threads used by :meth:`judge_many`.
        deadline: seconds one :meth:`judge_many` call may take; items not judged by then (cache hits excepted)
            fail as ``past_deadline`` without a request. None: no deadline.
    """

    kind: str = "base"

    def __init__(self, cache: Any | None = None, workers: int = 1, deadline: float | None = None) -> None:
        if deadline is not None and not deadline > 0:
            raise JudgeConfigError(f"the judge deadline must be a positive number of seconds, got {deadline}")
        self.cache = cache
        self.workers = max(1, int(workers))
        self.deadline = deadline
        self.stats = JudgeStats()
        self._stop_at: float | None = None

    def remaining(self) -> float | None:
        """Seconds left before the deadline of the running :meth:`judge_many` (None: no deadline)."""
        return None if self._stop_at is None else self._stop_at - time.monotonic()

    @abstractmethod
    def _judge(self, item: JudgeItem) -> Judgment:
        """Judge one item; raise :class:`JudgeError` when it cannot be judged."""

    @abstractmethod
    def describe(self) -> dict[str, Any]:
        """What identifies this judge in a results file (kind, model, host, prompt hash...), never a secret."""

    def cache_identity(self) -> str:
        """The part of the cache key that names the judge (model + prompt version); not the URL."""
        info = self.describe()
        return f"{info.get('kind')}|{info.get('model')}|{info.get('prompt_hash')}"

    def judge(self, item: JudgeItem) -> Judgment:
        """Judge one item (cache first); failures raise :class:`JudgeError` after counting."""
        if self.cache is not None:
            hit = self.cache.get(self.cache_identity(), item)
            if hit is not None:
                self.stats.add(cache_hits=1, judged=1)
                return hit
        left = self.remaining()
        if left is not None and left <= 0:
            self.stats.add(failed=1, past_deadline=1)
            raise JudgeError(f"not judged: the judge stage's deadline ({self.deadline:g} s) had passed")
        try:
            judgment = self._judge(item)
        except JudgeError:
            self.stats.add(failed=1)
            raise
        self.stats.add(judged=1)
        if self.cache is not None:
            self.cache.put(self.cache_identity(), item, judgment)
        return judgment

    def _judge_or_error(self, item: JudgeItem) -> Judgment | JudgeError:
        try:
            return self.judge(item)
        except JudgeError as err:
            return err

    def judge_many(self, items: Sequence[JudgeItem]) -> list[Judgment | JudgeError]:
        """Judge every item, in order; a failed item yields its :class:`JudgeError` instead of a verdict."""
        self._stop_at = None if self.deadline is None else time.monotonic() + self.deadline
        if self.workers == 1 or len(items) <= 1:
            return [self._judge_or_error(item) for item in items]
        with ThreadPoolExecutor(max_workers=self.workers) as pool:
            return list(pool.map(self._judge_or_error, items))
