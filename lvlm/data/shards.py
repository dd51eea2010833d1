"""Writing shards: an atomic shard writer, and the conversion of one Video-LLaVA/LLaVA JSON record to a sample.

The member layout is :mod:`lvlm.data.sample_format` (re-exported here: :func:`media_members`).
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import webdataset as wds

from lvlm.data.decoding import MediaDecodeError
from lvlm.data.media import ShardModality
from lvlm.data.sample_format import count_placeholders, media_members

__all__ = ["ShardWriter", "SkippedSample", "convert_record", "media_members", "sanitize_key"]


class ShardWriter:
    """Write samples into numbered tar shards; a shard gets its final name only once complete.

    Each shard is written as ``<name>.tar.tmp`` and renamed when it is full or the writer closes, so a reader
    never sees a half-written shard and a crashed run leaves only ``*.tmp`` files, never a truncated ``.tar``.

    Args:
        pattern: Shard path with a ``%06d``-style field, e.g. ``"out/train-%06d.tar"``.
        max_count: Samples per shard.
        max_size: Bytes per shard (a shard is closed before a sample would exceed it, unless it is empty).
        mtime: Timestamp written into the tar headers; a fixed value makes the tars byte-for-byte reproducible.
    """

    def __init__(self, pattern: str, max_count: int = 10_000, max_size: float = 1e9, mtime: float | None = None):
        self.pattern, self.max_count, self.max_size, self.mtime = pattern, max_count, max_size, mtime
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
            path = Path(self.pattern % len(self.paths))
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
        path = self.paths[-1]
        Path(f"{path}.tmp").replace(path)
        self._writer, self._file, self._count, self._size = None, None, 0, 0

    def __enter__(self) -> ShardWriter:
        return self

    def __exit__(self, exc_type: object, *_: object) -> None:
        if exc_type is None:
            self.close()
        elif self._writer is not None and self._file is not None:  # drop the incomplete shard, keep finished ones
            self._writer.close()
            self._file.close()
            Path(f"{self.paths.pop()}.tmp").unlink(missing_ok=True)


def encode_json(value: Any) -> bytes:
    """UTF-8 JSON bytes of a sample's ``json`` member."""
    return json.dumps(value, ensure_ascii=False).encode("utf-8")


def sanitize_key(raw: object, used: set[str]) -> str:
    """A dot-free, unique shard key from a record id (WebDataset splits member names at the first dot).

    Characters other than letters, digits, ``-`` and ``_`` become ``_``; a repeated key gets ``-1``, ``-2``...
    The key is added to ``used``.
    """
    key = re.sub(r"[^A-Za-z0-9_-]", "_", str(raw)).strip("_") or "sample"
    unique, n = key, 0
    while unique in used:
        n += 1
        unique = f"{key}-{n}"
    used.add(unique)
    return unique


class SkippedSample(Exception):
    """A record that cannot become a sample; ``reason`` is a short code counted in the report."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason, self.detail = reason, detail


def convert_record(
    record: Any,
    key: str,
    *,
    modalities: Sequence[ShardModality],
    folders: Mapping[str, Path | None],
    **options: Any,
) -> dict[str, Any]:
    """Turn one record of a Video-LLaVA/LLaVA JSON list into a shard sample (see docs/data-format.md).

    Each modality names its files in the record by its ``record_fields`` (``image``, ``video``, a plugin's
    ``depth``) and writes their members itself (``modality.shard_members``).

    Args:
        record: ``{"id", "image": str | list, "video": str | list, "conversations": [...]}``.
        key: The sample's (already sanitised, unique) key.
        modalities: The modalities whose fields a record may have.
        folders: Folder that each modality's paths are relative to, by modality name.
        **options: Passed to every ``shard_members`` (``reencode``, ``frames`` for videos).

    Returns:
        ``{"__key__": key, "json": bytes, <media members>: bytes}``.

    Raises:
        SkippedSample: With reason ``bad_json``, ``placeholder_mismatch``, ``missing_file``, ``path_escape``,
            ``unsupported_format`` or ``undecodable_media``.
    """
    conversations = _checked_conversations(record)
    paths = {m.name: [p for field in m.record_fields for p in _paths(record, field)] for m in modalities}
    placeholders = count_placeholders(conversations, modalities)
    if any(placeholders[name] != len(items) for name, items in paths.items()):
        found = " and ".join(f"{placeholders[m.name]} {m.token}" for m in modalities)
        given = " and ".join(f"{len(paths[m.name])} {m.name} file(s)" for m in modalities)
        raise SkippedSample("placeholder_mismatch", f"{found} placeholders but {given}")
    sample: dict[str, Any] = {"__key__": key}
    for modality in modalities:
        items = paths[modality.name]
        for i, rel in enumerate(items):
            path = resolve_media(folders.get(modality.name), rel, modality.name)
            sample.update(_members(modality, path, i, len(items), key, options))
    fields = {field for m in modalities for field in m.record_fields}
    source = {m.name: paths[m.name] for m in modalities if any(field in record for field in m.record_fields)}
    meta = {"id": record.get("id"), "conversations": conversations, "source": source}
    sample["json"] = encode_json(meta | {k: v for k, v in record.items() if k not in {"id", "conversations"} | fields})
    return sample


def _members(modality: ShardModality, path: Path, index: int, count: int, key: str, options: Any) -> dict[str, Any]:
    try:
        return modality.shard_members(path, index, count, key, **options)
    except SkippedSample:
        raise
    except MediaDecodeError as err:
        raise SkippedSample("undecodable_media", f"{path}: {err.reason}") from err
    except ValueError as err:
        raise SkippedSample("unsupported_format", str(err)) from err


def resolve_media(folder: Path | None, rel: str, kind: str) -> Path:
    """``folder / rel``, refusing paths that leave ``folder`` (``../x.jpg``, absolute paths, symlinks out)."""
    if folder is None:
        raise SkippedSample("missing_file", f"{kind} {rel!r} given but no --{kind}-folder (or --folder {kind}=DIR)")
    root = folder.resolve()
    path = (root / rel).resolve()
    if not path.is_relative_to(root):
        raise SkippedSample("path_escape", f"{kind} path {rel!r} resolves to {path}, outside {root}")
    if not path.is_file():
        raise SkippedSample("missing_file", f"{kind} file {path} does not exist")
    return path


def _checked_conversations(record: Any) -> list[dict[str, str]]:
    if not isinstance(record, dict):
        raise SkippedSample("bad_json", f"a record must be an object, got {type(record).__name__}")
    turns = record.get("conversations")
    if not isinstance(turns, list) or not turns:
        raise SkippedSample("bad_json", "'conversations' must be a non-empty list")
    for i, turn in enumerate(turns):
        if not (isinstance(turn, dict) and turn.get("from") in ("human", "gpt") and isinstance(turn.get("value"), str)):
            raise SkippedSample(
                "bad_json", f"turn {i} must be {{'from': 'human'|'gpt', 'value': str}}, got {turn!r:.80}"
            )
    return [{"from": t["from"], "value": t["value"]} for t in turns]


def _paths(record: dict[str, Any], field: str) -> list[str]:
    value = record.get(field)
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return list(value)
    raise SkippedSample("bad_json", f"'{field}' must be a path or a list of paths, got {value!r:.80}")
