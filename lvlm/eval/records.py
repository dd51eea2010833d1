"""Reading prediction and annotation files with errors that name the file, the line and the field."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any


class EvalInputError(ValueError):
    """A prediction or annotation file is missing, malformed, or lacks a field the protocol needs."""


def read_jsonl(path: str | Path) -> list[dict[str, Any]]:
    """Read a JSONL file (one JSON object per non-empty line).

    Raises:
        EvalInputError: the file is missing, a line is not JSON, or a line is not an object.
    """
    path = Path(path)
    if not path.is_file():
        raise EvalInputError(f"{path}: file not found")
    records = []
    with path.open(encoding="utf-8") as f:
        for lineno, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as err:
                raise EvalInputError(f"{path}:{lineno}: not valid JSON ({err.msg})") from None
            if not isinstance(record, dict):
                raise EvalInputError(f"{path}:{lineno}: expected a JSON object, got {type(record).__name__}")
            records.append(record)
    return records


def read_json(path: str | Path) -> Any:
    """Read a JSON file, naming the file in any error."""
    path = Path(path)
    if not path.is_file():
        raise EvalInputError(f"{path}: file not found")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise EvalInputError(f"{path}: not valid JSON (line {err.lineno}: {err.msg})") from None


def require_fields(record: Mapping[str, Any], fields: Iterable[str], where: str) -> None:
    """Raise an :class:`EvalInputError` naming ``where`` and the first field missing from ``record``."""
    for name in fields:
        if name not in record:
            key = record.get("key", record.get("question_id"))
            at = f" (key {key!r})" if key is not None else ""
            raise EvalInputError(f"{where}{at}: missing field {name!r}; present: {sorted(record)}")


def load_records(
    source: str | Path | Iterable[Mapping[str, Any]],
    required: Iterable[str] = (),
    aliases: Mapping[str, str] | None = None,
) -> list[dict]:
    """Prediction records from a JSONL path or an iterable of dicts, checking ``required`` fields.

    Args:
        source: JSONL path, or records in memory.
        required: fields every record must have.
        aliases: ``field -> other name`` copied into ``field`` when only the other name is present (e.g.
            the original Video-LLaVA outputs' ``pred`` for ``prediction``).

    Records from a file are named ``file:record N`` in errors; records given in memory by their index.
    """
    required = tuple(required)
    if isinstance(source, str | Path):
        records = read_jsonl(source)
        where = [f"{source}:record {i + 1}" for i in range(len(records))]
    else:
        records = [dict(r) for r in source]
        where = [f"predictions[{i}]" for i in range(len(records))]
    for record, at in zip(records, where):
        for name, other in (aliases or {}).items():
            if name not in record and other in record:
                record[name] = record[other]
        require_fields(record, required, at)
    return records


def index_by(records: Iterable[Mapping[str, Any]], field: str, where: str) -> dict[str, dict]:
    """Map ``str(record[field])`` to the record; duplicate keys are an error (they would hide a misalignment)."""
    out: dict[str, dict] = {}
    for record in records:
        require_fields(record, [field], where)
        key = str(record[field])
        if key in out:
            raise EvalInputError(f"{where}: duplicate {field} {key!r}")
        out[key] = dict(record)
    return out
