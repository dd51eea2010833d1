"""The conversion of one Video-LLaVA/LLaVA JSON record to a shard sample (and the shard writer, re-exported).

The member layout is :mod:`lvlm.data.sample_format` (re-exported here: :func:`media_members`); the atomic
shard writer is :mod:`lvlm.data.shard_writer` (re-exported here: :class:`ShardWriter`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from lvlm.data.decoding import MediaDecodeError
from lvlm.data.record_format import RecordError, conversation_turns, media_paths, record_object
from lvlm.data.sample_format import count_placeholders, media_members
from lvlm.data.shard_writer import ShardWriter
from lvlm.models.modality import Modality

__all__ = ["ShardWriter", "SkippedSample", "convert_record", "convert_safely", "media_members", "sanitize_key"]


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

    def __reduce__(self) -> tuple[type, tuple[str, str]]:  # crosses process boundaries (lvlm shards --workers)
        return SkippedSample, (self.reason, self.detail)


def convert_record(
    record: Any,
    key: str,
    *,
    modalities: Sequence[Modality],
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
            ``bad_path``, ``unreadable_media``, ``unsupported_format`` or ``undecodable_media``.
    """
    conversations, paths = checked_fields(record, modalities)
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


def checked_fields(record: Any, modalities: Sequence[Modality]) -> tuple[list[dict[str, str]], dict[str, list[str]]]:
    """A record's turns and each modality's media paths, checked by the record parser without touching any file.

    Raises:
        SkippedSample: ``bad_path`` for an unusable media path, ``placeholder_mismatch`` when the markers do not
            match the media, ``bad_json`` for anything else; the detail names the field.
    """
    try:
        if isinstance(record, RecordError):  # a JSONL line that is not JSON
            raise record
        conversations = conversation_turns(record_object(record).get("conversations"))
        paths = {m.name: [p for field in m.record_fields for p in media_paths(record, field)] for m in modalities}
    except RecordError as err:
        raise SkippedSample("bad_path" if err.reason == "bad_path" else "bad_json", str(err)) from None
    placeholders = count_placeholders(conversations, modalities)
    if any(placeholders[name] != len(items) for name, items in paths.items()):
        raise SkippedSample("placeholder_mismatch", mismatch_detail(placeholders, paths, modalities))
    return conversations, paths


def mismatch_detail(
    placeholders: Mapping[str, int], paths: Mapping[str, Sequence[str]], modalities: Sequence[Modality]
) -> str:
    """``1 <image> and 0 <video> placeholders but 2 image file(s) and 0 video file(s)``."""
    found = " and ".join(f"{placeholders[m.name]} {m.token}" for m in modalities)
    given = " and ".join(f"{len(paths[m.name])} {m.name} file(s)" for m in modalities)
    return f"{found} placeholders but {given}"


def _members(modality: Modality, path: Path, index: int, count: int, key: str, options: Any) -> dict[str, Any]:
    try:
        return modality.shard_members(path, index, count, key, **options)
    except SkippedSample:
        raise
    except MediaDecodeError as err:
        raise SkippedSample("undecodable_media", f"{path}: {err.reason}") from err
    except OSError as err:
        raise SkippedSample("unreadable_media", f"{path}: {err.strerror or err}") from err
    except ValueError as err:
        raise SkippedSample("unsupported_format", str(err)) from err


def resolve_media(folder: Path | None, rel: str, modality: str) -> Path:
    """``folder / rel``, refusing paths that leave ``folder`` (``../x.jpg``, absolute paths, symlinks out).

    A path the filesystem cannot follow (a symlink loop, a NUL byte, an over-long name) or that is not a
    regular file (a folder, a FIFO, a device) is a :class:`SkippedSample`, never an exception of its own.
    """
    if folder is None:
        raise SkippedSample(
            "missing_file", f"{modality} {rel!r} given but no --{modality}-folder (or --folder {modality}=DIR)"
        )
    try:
        root = folder.resolve()
        path = (root / rel).resolve()
        if not path.is_relative_to(root):
            raise SkippedSample("path_escape", f"{modality} path {rel!r} resolves to {path}, outside {root}")
        if not path.is_file():
            raise SkippedSample("missing_file", f"{modality} file {path} does not exist or is not a regular file")
    except (OSError, ValueError, RuntimeError) as err:  # ELOOP, ENAMETOOLONG, NUL byte; 3.11 raises RuntimeError
        raise SkippedSample("bad_path", f"{modality} path {rel!r:.200} cannot be followed: {err}") from err
    return path


def convert_safely(record: Any, key: str, **options: Any) -> dict[str, Any] | SkippedSample:
    """:func:`convert_record`, returning the reason instead of raising: no record can stop a conversion.

    Anything other than a :class:`SkippedSample` (a decoder crash, a library bug) becomes reason
    ``conversion_error`` with the exception's type and message.
    """
    try:
        return convert_record(record, key, **options)
    except SkippedSample as skip:
        return skip
    except Exception as err:  # noqa: BLE001 - one record never aborts the run; the report says what happened
        return SkippedSample("conversion_error", f"{type(err).__name__}: {err}"[:500])
