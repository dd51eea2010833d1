"""The bad-sample report: skipped samples by reason, with examples by key, in files of the run directory.

Each process that reads data (a rank's main process or one of its DataLoader workers) writes its own files, so
writers never share one (`w` is `main` when reading happens in the main process):

- `bad_samples.{split}.rank{r}.worker{w}.jsonl`: the first `EXAMPLES_PER_REASON` skipped samples of each reason,
  one line each, `{"key", "reason", "detail", "url", "split", "rank", "worker", "time"}`; later ones are only
  counted, so the file stays small whatever the data (`read_bad_samples` merges the files).
- `bad_sample_counts.{split}.rank{r}.worker{w}.json`: every skipped sample counted by reason
  (`count_bad_samples` sums them).

A training stream also stops after `max_consecutive` bad samples in a row (`TooManyBadSamplesError`, naming the
report): shards whose every sample is bad would otherwise be read forever.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections import Counter
from pathlib import Path
from typing import Any

import torch.utils.data

from lvlm.data.decoding.errors import MediaDecodeError
from lvlm.data.sample_errors import BadSampleError, TooManyBadSamplesError

log = logging.getLogger(__name__)

REPORT_GLOB = "bad_samples.*.jsonl"
COUNTS_GLOB = "bad_sample_counts.*.json"
EXAMPLES_PER_REASON = 100  # per process: lines written to the report for each reason; the rest only counted
_LOGGED_PER_REASON = 5  # per process: the first few are logged in full, the rest only counted in the files


class BadSampleReport:
    """Writes skipped samples to per-process files; picklable, so DataLoader workers can write too.

    Args:
        run_dir: Directory of the report files (created if missing).
        split: `"train"`, `"val"`, `"test"` or `"predict"`.
        rank: Global rank of the process that owns the loader.
        max_consecutive: Raise `TooManyBadSamplesError` at this many bad samples without a good one between
            (`good` resets the run); None never stops (the finite evaluation sets end by themselves).
    """

    def __init__(
        self, run_dir: str | os.PathLike, split: str, rank: int = 0, max_consecutive: int | None = None
    ) -> None:
        self.run_dir = Path(run_dir)
        self.split = split
        self.rank = rank
        self.max_consecutive = max_consecutive
        self.muted = False
        self.consecutive = 0
        self.counts: Counter[str] = Counter()

    def _path(self, kind: str, suffix: str) -> Path:
        info = torch.utils.data.get_worker_info()
        worker = "main" if info is None else str(info.id)
        return self.run_dir / f"{kind}.{self.split}.rank{self.rank}.worker{worker}.{suffix}"

    @property
    def path(self) -> Path:
        """This process's file of examples (the one errors name)."""
        return self._path("bad_samples", "jsonl")

    def record(self, key: str, reason: str, detail: str, url: str = "") -> None:
        """Counts one skipped sample and writes it while its reason has fewer than `EXAMPLES_PER_REASON` lines
        (unless muted, e.g. while a resumed loader replays already-seen batches).

        Raises:
            TooManyBadSamplesError: `max_consecutive` bad samples in a row.
        """
        if self.muted:
            return
        self.counts[reason] += 1
        self.consecutive += 1
        self.run_dir.mkdir(parents=True, exist_ok=True)
        path = self.path
        if self.counts[reason] <= EXAMPLES_PER_REASON:
            info = torch.utils.data.get_worker_info()
            entry = {"key": key, "reason": reason, "detail": detail, "url": url, "split": self.split}
            entry |= {"rank": self.rank, "worker": "main" if info is None else str(info.id), "time": time.time()}
            with open(path, "a", encoding="utf-8") as handle:
                handle.write(json.dumps(entry) + "\n")
        counts_path = self._path("bad_sample_counts", "json")
        staged = counts_path.with_name(counts_path.name + ".tmp")
        staged.write_text(json.dumps(dict(self.counts)), encoding="utf-8")
        os.replace(staged, counts_path)  # readers never see half a file
        if self.counts[reason] <= _LOGGED_PER_REASON:
            log.warning("skipped %s sample %r (%s): %s [report: %s]", self.split, key, reason, detail, path)
            if self.counts[reason] == _LOGGED_PER_REASON:
                log.warning("further %s samples skipped for %s are only counted [report: %s]", self.split, reason, path)
        if self.max_consecutive is not None and self.consecutive >= self.max_consecutive:
            by_reason = ", ".join(f"{r}: {n}" for r, n in self.counts.most_common())
            raise TooManyBadSamplesError(
                f"{self.consecutive} bad {self.split} samples in a row (max_consecutive_bad_samples) on rank "
                f"{self.rank}: the data cannot be trained on; skipped so far by reason: {by_reason}; examples "
                f"(key, reason, detail) in {path}"
            )

    def good(self, count: int = 1) -> None:
        """`count` samples were used: the run of consecutive bad samples is over."""
        if count:
            self.consecutive = 0

    def record_error(self, err: Exception, url: str = "") -> None:
        """Records a `BadSampleError` or a decoder's `MediaDecodeError` (both carry `.key`)."""
        self.record(getattr(err, "key", "?"), error_reason(err), getattr(err, "detail", None) or str(err), url)

    def shard_error(self, err: Exception) -> bool:
        """A WebDataset `handler`: records an unreadable shard or tar member, then lets the stream continue."""
        self.record("?", "unreadable_shard", f"{type(err).__name__}: {err}")
        return True


def error_reason(err: Exception) -> str:
    """The reason code of a skipped sample's error (`undecodable_video`, `bad_json`, ...)."""
    if isinstance(err, BadSampleError):
        return err.reason
    if isinstance(err, MediaDecodeError):
        return f"undecodable_{err.modality}"
    return type(err).__name__


def read_bad_samples(run_dir: str | os.PathLike, split: str | None = None) -> list[dict[str, Any]]:
    """All report lines of a run directory (every rank and worker), ordered by time.

    Args:
        run_dir: The run directory.
        split: Only this split, if given.
    """
    entries: list[dict[str, Any]] = []
    for path in sorted(Path(run_dir).glob(REPORT_GLOB)):
        with open(path, encoding="utf-8") as handle:
            entries += [json.loads(line) for line in handle if line.strip()]
    if split is not None:
        entries = [e for e in entries if e["split"] == split]
    return sorted(entries, key=lambda e: e["time"])


def count_bad_samples(run_dir: str | os.PathLike, split: str | None = None) -> Counter[str]:
    """Running totals of skipped samples by reason (examples written or not), merged over ranks and workers."""
    totals: Counter[str] = Counter()
    for path in sorted(Path(run_dir).glob(COUNTS_GLOB)):
        if split is None or path.name.split(".")[1] == split:
            totals.update(json.loads(path.read_text(encoding="utf-8")))
    return totals
