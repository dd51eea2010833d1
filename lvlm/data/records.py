"""The input of ``lvlm shards``: files of Video-LLaVA/LLaVA records, read and checked whole before any media is touched.

Files are read by :func:`lvlm.data.record_files.read_records` (a JSON list or JSONL, UTF-8) and every record is
checked by the parser of :mod:`lvlm.data.record_format`, the same one prediction and training use. A file that
cannot be used at all is an :class:`~lvlm.core.text_files.InputFileError` naming the file. A record that cannot
become a sample (not an object, a missing or mistyped field, a placeholder count that does not match its media, a
media path with a NUL byte or an over-long name) is kept as a :class:`Record` with ``problem`` set: the
conversion skips it, counts it and lists it in the report with file, index, key and reason. Keys are given here,
in input order, so they do not depend on what the conversion later skips: a record's identity
(:mod:`lvlm.core.record_identity`), else ``FILESTEM_INDEX``, made safe for a shard member name.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lvlm.core.record_identity import record_identity
from lvlm.data.record_files import read_records
from lvlm.data.shards import SkippedSample, checked_fields, sanitize_key
from lvlm.models.modality import Modality


@dataclass
class Record:
    """One entry of an input file.

    Attributes:
        ordinal: Position over all input files together (file order, then record order).
        file: The file it came from.
        index: Position in that file (from 0).
        raw_id: The record's identity (``FILESTEM_INDEX`` when it has none).
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
        InputFileError: A file is unreadable, not UTF-8, not JSON, or neither a list nor JSONL (it names the file).
    """
    records: list[Record] = []
    used: set[str] = set()
    for path in paths:
        for index, value in enumerate(read_records(path, encoding="utf-8").values):
            raw_id = record_identity(value) or f"{path.stem}_{index}"
            base = sanitize_key(raw_id, set())
            key = sanitize_key(raw_id, used)
            record = Record(len(records), str(path), index, raw_id, key, key != base, value)
            try:
                record.media = {name: len(items) for name, items in checked_fields(value, modalities)[1].items()}
            except SkippedSample as skip:  # judged from the JSON alone: bad_json, bad_path, placeholder_mismatch
                record.problem = skip
            records.append(record)
    return records


def needed_folders(records: Sequence[Record]) -> dict[str, int]:
    """How many usable records name media of each modality (``{"image": n, "video": m}``), to check the folders."""
    counts: dict[str, int] = {}
    for record in records:
        if record.problem is None:
            for name, count in record.media.items():
                counts[name] = counts.get(name, 0) + bool(count)
    return counts
