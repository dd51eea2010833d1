"""Files of records: a JSON list, or JSONL (one record per line, as POPE's ``coco_pope_*.json``).

The whole file is read before any record is used. A file that cannot be used at all (missing, unreadable,
not decodable, empty, not JSON, neither a list nor lines of objects) is an
:class:`~lvlm.core.text_files.InputFileError`: one line naming the file. Inside a JSONL file a line that is not
JSON is one bad record (a :class:`~lvlm.data.record_format.RecordError` in its place), skipped by the reader's
caller and reported with its line; a JSON list must parse whole.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lvlm.core.text_files import InputFileError, read_text
from lvlm.data.record_format import RecordError


@dataclass(frozen=True)
class RecordFile:
    """The records of one file.

    Attributes:
        values: The records as read from JSON; a JSONL line that is not JSON is a ``RecordError`` instead.
        sources: Where each was read: ``FILE:record N`` (a JSON list, from 1) or ``FILE:line N`` (JSONL).
        note: How the file was decoded when it was not plain UTF-8 (``""`` otherwise).
    """

    values: list[Any]
    sources: list[str]
    note: str = ""


def read_records(path: str | Path, encoding: str = "auto") -> RecordFile:
    """Read a JSON-list or JSONL file of records (``encoding`` as :func:`~lvlm.core.text_files.read_text`).

    Raises:
        InputFileError: The file is missing, unreadable, not decodable, empty, not valid JSON (a list), or a
            JSONL file with no line holding a JSON object.
    """
    path = Path(path)
    decoded = read_text(path, encoding)
    text = decoded.text.lstrip("\ufeff")
    if not text.strip():
        raise InputFileError(f"{path}: the file is empty (expected a JSON list of records, or JSONL)")
    if text.lstrip().startswith("["):
        try:
            values = json.loads(text)
        except json.JSONDecodeError as err:
            raise InputFileError(
                f"{path}: not valid JSON (line {err.lineno}, column {err.colno}: {err.msg}); a JSON list must parse "
                "whole (JSONL, one object per line, lets one bad line be skipped)"
            ) from None
        return RecordFile(values, [f"{path}:record {i + 1}" for i in range(len(values))], decoded.note)
    values, sources = [], []
    for lineno, line in enumerate(text.splitlines(), start=1):
        if line.strip():
            values.append(_json_line(line))
            sources.append(f"{path}:line {lineno}")
    if not any(isinstance(value, dict) for value in values):
        first = values[0].detail if isinstance(values[0], RecordError) else f"not an object: {type(values[0]).__name__}"
        raise InputFileError(f"{path}: neither a JSON list nor JSONL of objects ({sources[0]}: {first})")
    return RecordFile(values, sources, decoded.note)


def _json_line(line: str) -> Any:
    try:
        return json.loads(line)
    except json.JSONDecodeError as err:
        return RecordError("invalid_json", f"not valid JSON ({err.msg}, column {err.colno})")
