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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lvlm.core.errors import UserError
from lvlm.data.sample_format import count_placeholders
from lvlm.data.shards import SkippedSample, sanitize_key

NAME_MAX = 255  # bytes per path component (Linux, macOS)
PATH_MAX = 4096  # bytes per path
MEDIA_FIELDS = ("image", "video")


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
    """

    ordinal: int
    file: str
    index: int
    raw_id: Any
    key: str
    renamed: bool
    value: Any
    problem: SkippedSample | None = None

    def modality(self) -> str:
        """``"image"``, ``"video"``, ``"image+video"`` or ``"text"``: the kinds of media the record names."""
        kinds = [field for field in MEDIA_FIELDS if media_paths(self.value, field)]
        return "+".join(kinds) or "text"


def load_records(paths: Sequence[Path]) -> list[Record]:
    """Read every input file and check every record; keys are assigned in input order.

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
            record.problem = check_record(value)
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


def check_record(value: Any) -> SkippedSample | None:
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
    counts = []
    for field in MEDIA_FIELDS:
        paths = media_paths(value, field)
        if paths is None:
            return SkippedSample("bad_json", f"'{field}' must be a path or a list of paths, got {value[field]!r:.80}")
        for path in paths:
            if problem := check_media_path(path):
                return SkippedSample("bad_path", f"{field} path {path!r:.120}: {problem}")
        counts.append(len(paths))
    n_images, n_videos = count_placeholders(turns)
    if (n_images, n_videos) != tuple(counts):
        return SkippedSample(
            "placeholder_mismatch",
            f"{n_images} <image> and {n_videos} <video> placeholders but {counts[0]} images and {counts[1]} videos",
        )
    return None


def media_paths(value: Any, field: str) -> list[str] | None:
    """The paths of a record's ``image`` or ``video`` field as a list; None if the field has the wrong type."""
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
    """How many usable records name media of each kind (``{"image": n, "video": m}``), to check the folders."""
    counts = dict.fromkeys(MEDIA_FIELDS, 0)
    for record in records:
        if record.problem is None:
            for field in MEDIA_FIELDS:
                counts[field] += bool(media_paths(record.value, field))
    return counts
