"""The bad-sample report: every skipped sample, by key and reason, in JSONL files of the run directory.

Each process that reads data (a rank's main process or one of its DataLoader workers) appends to its own file,
`bad_samples.{split}.rank{r}.worker{w}.jsonl` (`w` is `main` when reading happens in the main process), so
writers never share a file; `read_bad_samples` merges them. A line is
`{"key", "reason", "detail", "url", "split", "rank", "worker", "time"}`.
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
from lvlm.data.sample_errors import BadSampleError

log = logging.getLogger(__name__)

REPORT_GLOB = "bad_samples.*.jsonl"
_LOGGED_PER_REASON = 5  # per process: the first few are logged in full, the rest only counted in the files


class BadSampleReport:
    """Appends skipped samples to a per-process JSONL file; picklable, so DataLoader workers can write too.

    Args:
        run_dir: Directory of the report files (created if missing).
        split: `"train"`, `"val"`, `"test"` or `"predict"`.
        rank: Global rank of the process that owns the loader.
    """

    def __init__(self, run_dir: str | os.PathLike, split: str, rank: int = 0) -> None:
        self.run_dir = Path(run_dir)
        self.split = split
        self.rank = rank
        self.muted = False
        self._logged: Counter[str] = Counter()

    def record(self, key: str, reason: str, detail: str, url: str = "") -> None:
        """Writes one skipped sample (unless muted, e.g. while a resumed loader replays already-seen batches)."""
        if self.muted:
            return
        info = torch.utils.data.get_worker_info()
        worker = "main" if info is None else str(info.id)
        entry = {
            "key": key,
            "reason": reason,
            "detail": detail,
            "url": url,
            "split": self.split,
            "rank": self.rank,
            "worker": worker,
            "time": time.time(),
        }
        self.run_dir.mkdir(parents=True, exist_ok=True)
        path = self.run_dir / f"bad_samples.{self.split}.rank{self.rank}.worker{worker}.jsonl"
        with open(path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(entry) + "\n")
        self._logged[reason] += 1
        if self._logged[reason] <= _LOGGED_PER_REASON:
            log.warning("skipped %s sample %r (%s): %s [report: %s]", self.split, key, reason, detail, path)

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
        return f"undecodable_{err.kind}"
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
    """Running totals of skipped samples by reason, merged over ranks and workers."""
    return Counter(entry["reason"] for entry in read_bad_samples(run_dir, split))
