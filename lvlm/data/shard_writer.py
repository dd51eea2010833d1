"""An atomic shard writer: numbered tar shards, each visible under its final name only once complete."""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path
from typing import Any

import webdataset as wds


class ShardWriter:
    """Write samples into numbered tar shards; a shard gets its final name only once complete.

    Each shard is written as ``<name>.tar.tmp`` and renamed when it is full or the writer closes, so a reader
    never sees a half-written shard and a crashed run leaves only ``*.tmp`` files, never a truncated ``.tar``.

    Args:
        pattern: Shard path with a ``%06d``-style field, e.g. ``"out/train-%06d.tar"``.
        max_count: Samples per shard.
        max_size: Bytes per shard (a shard is closed before a sample would exceed it, unless it is empty).
        mtime: Timestamp written into the tar headers; a fixed value makes the tars byte-for-byte reproducible.
        start: Number of the first shard (a resumed conversion continues the numbering).
        on_finish: Called with ``(path, samples)`` right after a shard got its final name.
    """

    def __init__(
        self,
        pattern: str,
        max_count: int = 10_000,
        max_size: float = 1e9,
        mtime: float | None = None,
        start: int = 0,
        on_finish: Callable[[Path, int], None] | None = None,
    ):
        self.pattern, self.max_count, self.max_size, self.mtime = pattern, max_count, max_size, mtime
        self.start, self.on_finish = start, on_finish
        self.paths: list[Path] = []
        self._writer: wds.TarWriter | None = None
        self._file: io.BufferedWriter | None = None
        self._count = self._size = 0

    def write(self, sample: dict[str, Any]) -> None:
        """Write one sample: ``__key__`` plus members whose values are bytes (or str)."""
        size = sum(len(v) for k, v in sample.items() if not k.startswith("_"))
        if self._writer is not None and (self._count >= self.max_count or self._size + size > self.max_size):
            self._finish()
        if self._writer is None:
            path = Path(self.pattern % (self.start + len(self.paths)))
            path.parent.mkdir(parents=True, exist_ok=True)
            self._file = open(f"{path}.tmp", "wb")  # noqa: SIM115 - closed in _finish
            self._writer = wds.TarWriter(self._file, encoder=False, mtime=self.mtime)
            self.paths.append(path)
        self._writer.write(sample)
        self._count += 1
        self._size += size

    def close(self) -> list[Path]:
        """Finish the open shard. Returns the paths of all shards written."""
        if self._writer is not None:
            self._finish()
        return self.paths

    def _finish(self) -> None:
        assert self._writer is not None and self._file is not None
        self._writer.close()
        self._file.close()
        path, count = self.paths[-1], self._count
        Path(f"{path}.tmp").replace(path)
        self._writer, self._file, self._count, self._size = None, None, 0, 0
        if self.on_finish is not None:
            self.on_finish(path, count)

    def __enter__(self) -> ShardWriter:
        return self

    def __exit__(self, exc_type: object, *_: object) -> None:
        if exc_type is None:
            self.close()
        elif self._writer is not None and self._file is not None:  # drop the incomplete shard, keep finished ones
            self._writer.close()
            self._file.close()
            Path(f"{self.paths.pop()}.tmp").unlink(missing_ok=True)
