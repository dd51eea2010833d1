"""Reading prediction and annotation files: bad records skipped and listed, errors naming file, line and field.

A prediction file is JSONL, decoded as UTF-8 or, when it is not valid UTF-8, as Latin-1 (the encoding used is
recorded in the results). A line that is not a JSON object, a record without a needed field and a second
record for the same key are skipped and listed (``source``, ``key``, ``reason``, ``detail``) in the results,
never counted; only a file with no usable record at all stops the evaluation.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lvlm.core.record_identity import record_identity
from lvlm.core.text_files import InputFileError, read_text


class EvalInputError(InputFileError, ValueError):
    """A prediction or annotation file is missing or unusable as a whole (one bad record is skipped instead)."""


def skip_entry(where: str, record: Any, reason: str, detail: str) -> dict[str, Any]:
    """One line of the report of skipped records: ``{"source", "key", "reason", "detail"}``."""
    key = record_key(record) if isinstance(record, Mapping) else None
    return {"source": where, "key": key, "reason": reason, "detail": detail}


def record_key(record: Mapping[str, Any]) -> str | None:
    """A prediction's key: its identity (:mod:`lvlm.core.record_identity`: ``question_id``, else ``key``, else
    ``id``), the same a question gets in ``lvlm predict`` and a sample in ``lvlm shards``; None when it has none."""
    return record_identity(record)


@dataclass
class Records:
    """Usable records, where each was read (``file:line N``), the skipped ones, and how the file was decoded."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    where: list[str] = field(default_factory=list)
    skipped: list[dict[str, Any]] = field(default_factory=list)
    encoding: str = "utf-8"
    encoding_note: str = ""

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return iter(self.rows)

    def __len__(self) -> int:
        return len(self.rows)

    def located(self) -> Iterator[tuple[str, dict[str, Any]]]:
        """``(where, record)`` pairs, ``where`` being ``FILE:line N``."""
        return iter(list(zip(self.where, self.rows)))

    def skip(self, where: str, record: Any, reason: str, detail: str) -> None:
        self.skipped.append(skip_entry(where, record, reason, detail))

    def skipped_hint(self) -> str:
        """`` (N records skipped; first: WHERE: DETAIL)`` for error messages, or ``""``."""
        if not self.skipped:
            return ""
        first = self.skipped[0]
        return f" ({len(self.skipped)} prediction records skipped; first: {first['source']}: {first['detail']})"


def read_jsonl(path: str | Path, encoding: str = "auto") -> Records:
    """Read a JSONL file: a line that is not JSON or not an object is skipped and reported, never fatal.

    Raises:
        EvalInputError: the file is missing, cannot be decoded, or holds no usable record.
    """
    path = Path(path)
    if not path.is_file():
        raise EvalInputError(f"{path}: file not found")
    decoded = read_text(path, encoding)
    out = Records(encoding=decoded.encoding, encoding_note=decoded.note)
    for lineno, line in enumerate(decoded.text.lstrip("\ufeff").splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{path}:line {lineno}"
        try:
            record = json.loads(line)
        except json.JSONDecodeError as err:
            out.skip(where, None, "invalid_json", f"not valid JSON ({err.msg}, column {err.colno})")
            continue
        if not isinstance(record, dict):
            out.skip(where, None, "not_an_object", f"expected a JSON object, got {type(record).__name__}")
            continue
        out.rows.append(record)
        out.where.append(where)
    if not out.rows:
        first = f" ({out.skipped[0]['source']}: {out.skipped[0]['detail']})" if out.skipped else ""
        raise EvalInputError(f"{path}: no usable JSON object{first}")
    return out


def read_json(path: str | Path, encoding: str = "auto") -> Any:
    """Read a JSON file (UTF-8, else Latin-1), naming the file in any error."""
    path = Path(path)
    if not path.is_file():
        raise EvalInputError(f"{path}: file not found")
    try:
        return json.loads(read_text(path, encoding).text.lstrip("\ufeff"))
    except json.JSONDecodeError as err:
        raise EvalInputError(f"{path}: not valid JSON (line {err.lineno}: {err.msg})") from None


def require_fields(record: Mapping[str, Any], fields: Iterable[str], where: str) -> None:
    """Raise an :class:`EvalInputError` naming ``where`` and the first field missing from ``record``."""
    for name in fields:
        if name not in record:
            key = record_identity(record)
            at = f" (key {key!r})" if key is not None else ""
            raise EvalInputError(f"{where}{at}: missing field {name!r}; present: {sorted(record)}")


KeyOf = Callable[[Mapping[str, Any]], Any]


def load_records(
    source: str | Path | Iterable[Mapping[str, Any]],
    required: Iterable[str] = (),
    aliases: Mapping[str, str] | None = None,
    key: KeyOf | None = record_key,
    encoding: str = "auto",
) -> Records:
    """Prediction records from a JSONL path or an iterable of dicts; unusable ones are skipped and listed.

    Args:
        source: JSONL path, or records in memory.
        required: fields every record must have (a record without one is skipped: ``missing_field``).
        aliases: ``field -> other name`` copied into ``field`` when only the other name is present (e.g.
            the original Video-LLaVA outputs' ``pred`` for ``prediction``).
        key: what identifies a record; a later record with the key of an earlier one is skipped
            (``duplicate_key``), so no question is ever counted twice. None: no check here.
        encoding: of the file (``auto``: UTF-8, else Latin-1, noted in the result).

    Records from a file are named ``FILE:line N``; records given in memory ``predictions[i]``.
    """
    required = tuple(required)
    if isinstance(source, str | Path):
        loaded = read_jsonl(source, encoding)
    else:
        loaded = Records()
        for i, record in enumerate(source):
            if isinstance(record, Mapping):
                loaded.rows.append(dict(record))
                loaded.where.append(f"predictions[{i}]")
            else:
                loaded.skip(f"predictions[{i}]", None, "not_an_object", f"got {type(record).__name__}")
    out = Records(skipped=loaded.skipped, encoding=loaded.encoding, encoding_note=loaded.encoding_note)
    first: dict[Any, str] = {}
    for where, record in loaded.located():
        for name, other in (aliases or {}).items():
            if name not in record and other in record:
                record[name] = record[other]
        absent = [name for name in required if name not in record]
        if absent:
            out.skip(where, record, "missing_field", f"missing field {absent[0]!r}; present: {sorted(record)[:12]}")
            continue
        identity = key(record) if key is not None else None
        if identity is not None and identity in first:
            out.skip(where, record, "duplicate_key", f"key {identity!r} already used at {first[identity]}")
            continue
        if identity is not None:
            first[identity] = where
        out.rows.append(record)
        out.where.append(where)
    return out
