"""The input of ``lvlm shards``: Video-LLaVA/LLaVA JSON lists, read and checked whole before any media is touched.

A file that cannot be used at all (unreadable, not UTF-8, not JSON, not a list) is a :class:`UserError` naming
the file. A record that cannot become a sample (not an object, a missing or mistyped field, a placeholder count
that does not match its media, a media path with a NUL byte or an over-long name) is kept as a :class:`Record`
with ``problem`` set: the conversion skips it, counts it and lists it in the report with file, index, key and
reason. Keys are given here, in input order, so they do not depend on what the conversion later skips.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lvlm.core.errors import UserError
from lvlm.data.sample_format import count_placeholders
from lvlm.data.shards import SkippedSample, mismatch_detail, sanitize_key
from lvlm.models.modality import Modality

NAME_MAX = 255  # bytes per path component (Linux, macOS)
PATH_MAX = 4096  # bytes per path


class InputFileError(UserError):
    """An input JSON file that cannot be read as a list of records."""


@dataclass
class Record:
    """One entry of an input list.

    Attributes:
        ordinal: Position over all input files together (file order, then list order).
        file: The JSON file it came from.
        index: Position in that file's list.
        raw_id: The record's ``id`` (``FILESTEM_INDEX`` when it has none).
        key: The sample key (sanitised, unique over all inputs).
        renamed: True when ``key`` got a ``-N`` suffix because an earlier record had the same key.
        value: The record as read from JSON.
        problem: Why it cannot be converted (``SkippedSample``), found without touching any media; None if none.
        media: How many files the record names per modality (``{"image": 1, "video": 0}``).
    """

    ordinal: int
    file: str
    index: int
    raw_id: Any
    key: str
    renamed: bool
    value: Any
    problem: SkippedSample | None = None
    media: dict[str, int] = field(default_factory=dict)

    def modality(self) -> str:
        """``"image"``, ``"video"``, ``"image+video"`` or ``"text"``: the modalities whose media the record names."""
        return "+".join(name for name, count in self.media.items() if count) or "text"


def load_records(paths: Sequence[Path], modalities: Sequence[Modality]) -> list[Record]:
    """Read every input file and check every record; keys are assigned in input order.

    ``modalities`` say which fields name media (``record_fields``) and which placeholders they match.

    Raises:
        InputFileError: A file is unreadable, not UTF-8, not JSON, or not a list (the message names the file).
    """
    records: list[Record] = []
    used: set[str] = set()
    for path in paths:
        for index, value in enumerate(read_list(path)):
            raw_id = value.get("id") if isinstance(value, dict) and "id" in value else f"{path.stem}_{index}"
            base = sanitize_key(raw_id, set())
            key = sanitize_key(raw_id, used)
            record = Record(len(records), str(path), index, raw_id, key, key != base, value)
            record.problem = check_record(value, modalities)
            if record.problem is None:
                record.media = {m.name: len(_modality_paths(value, m)) for m in modalities}
            records.append(record)
    return records


def read_list(path: Path) -> list[Any]:
    """The JSON list in ``path``."""
    try:
        text = path.read_bytes().decode("utf-8")
    except OSError as err:
        raise InputFileError(f"{path}: cannot read the file ({err.strerror or err})") from err
    except UnicodeDecodeError as err:
        raise InputFileError(f"{path}: not UTF-8 text (byte {err.start}); save the JSON as UTF-8") from err
    try:
        value = json.loads(text)
    except json.JSONDecodeError as err:
        raise InputFileError(f"{path}: not valid JSON: {err.msg} at line {err.lineno}, column {err.colno}") from err
    if not isinstance(value, list):
        raise InputFileError(f"{path}: expected a JSON list of records, got a JSON {type(value).__name__}")
    return value


def check_record(value: Any, modalities: Sequence[Modality]) -> SkippedSample | None:
    """Why ``value`` cannot become a sample, judged from the JSON alone; None if it can."""
    if not isinstance(value, dict):
        return SkippedSample("bad_json", f"a record must be a JSON object, got {type(value).__name__}")
    try:
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError as err:
        return SkippedSample("bad_json", f"the record holds text that is not valid Unicode ({err.reason})")
    raw_id = value.get("id", "")
    if not isinstance(raw_id, (str, int)) or isinstance(raw_id, bool):
        return SkippedSample("bad_json", f"'id' must be a string or an integer, got {value['id']!r:.80}")
    turns = value.get("conversations")
    if not isinstance(turns, list) or not turns:
        return SkippedSample("bad_json", "'conversations' must be a non-empty list of turns")
    for i, turn in enumerate(turns):
        if not (isinstance(turn, dict) and turn.get("from") in ("human", "gpt") and isinstance(turn.get("value"), str)):
            shape = "{'from': 'human'|'gpt', 'value': str}"
            return SkippedSample("bad_json", f"turn {i} must be {shape}, got {turn!r:.80}")
    for name in [f for m in modalities for f in m.record_fields]:
        paths = media_paths(value, name)
        if paths is None:
            return SkippedSample("bad_json", f"'{name}' must be a path or a list of paths, got {value[name]!r:.80}")
        for path in paths:
            if problem := check_media_path(path):
                return SkippedSample("bad_path", f"{name} path {path!r:.120}: {problem}")
    paths = {m.name: _modality_paths(value, m) for m in modalities}
    placeholders = count_placeholders(turns, modalities)
    if any(placeholders[name] != len(items) for name, items in paths.items()):
        return SkippedSample("placeholder_mismatch", mismatch_detail(placeholders, paths, modalities))
    return None


def _modality_paths(value: Any, modality: Modality) -> list[str]:
    return [path for name in modality.record_fields for path in media_paths(value, name) or []]


def media_paths(value: Any, field: str) -> list[str] | None:
    """The paths of a record's media field (``image``, ``video``, ...) as a list; None if it has the wrong type."""
    if not isinstance(value, dict):
        return []
    paths = value.get(field)
    if paths is None:
        return []
    if isinstance(paths, str):
        return [paths]
    if isinstance(paths, list) and all(isinstance(p, str) for p in paths):
        return list(paths)
    return None


def check_media_path(path: str) -> str | None:
    """What makes a media path unusable before the filesystem is asked (empty, NUL, too long, not encodable)."""
    if not path.strip():
        return "empty path"
    if "\x00" in path:
        return "contains a NUL byte"
    try:
        encoded = os.fsencode(path)
    except UnicodeEncodeError:
        return "cannot be encoded as a file name"
    if len(encoded) > PATH_MAX:
        return f"longer than {PATH_MAX} bytes"
    if any(len(part) > NAME_MAX for part in encoded.split(b"/")):
        return f"has a name longer than {NAME_MAX} bytes"
    return None


def needed_folders(records: Sequence[Record]) -> dict[str, int]:
    """How many usable records name media of each modality (``{"image": n, "video": m}``), to check the folders."""
    counts: dict[str, int] = {}
    for record in records:
        if record.problem is None:
            for name, count in record.media.items():
                counts[name] = counts.get(name, 0) + bool(count)
    return counts
