"""Question files: a JSON list of records or JSONL (one record per line, as POPE's ``coco_pope_*.json``).

The whole file is read and every record checked before any answer is generated. A file that cannot be read at
all (missing, not JSON, a JSON value that is neither a list nor an object) is a
:class:`~lvlm.core.errors.UserError` naming the file; one bad line of a JSONL file or one bad record is a
skipped question, reported with its line and reason.

POPE's files (``coco_pope_{split}.json``) do not name their split and reuse question ids across splits: every
question of a file so named gets ``category: split`` (unless it has a category), which its prediction carries
to ``lvlm eval pope``.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from lvlm.core.errors import UserError
from lvlm.core.text_files import read_text
from lvlm.inference.questions import InvalidQuestion, Question, questions_from_records

POPE_FILE = re.compile(r"coco_pope_(\w+)\.json")


class QuestionFileError(UserError):
    """A question file that cannot be read as a JSON list or as JSONL."""


class _BadLine:
    """Stands for a JSONL line that is not JSON (becomes a skipped question)."""

    def __init__(self, detail: str) -> None:
        self.detail = detail


def read_question_records(path: str | Path, encoding: str = "auto") -> tuple[list[Any], list[str], str]:
    """The records of a JSON-list or JSONL file, where each one was read, and a note on the encoding.

    Returns:
        ``(records, sources, note)``: ``sources[i]`` is ``"FILE:record N"`` or ``"FILE:line N"``; a JSONL line
        that is not JSON is returned as a placeholder that :func:`questions_from_file` reports as skipped.

    Raises:
        QuestionFileError: the file is missing, empty, or neither a JSON list nor JSONL.
    """
    path = Path(path)
    decoded = read_text(path, encoding)
    text = decoded.text.lstrip("\ufeff")
    if not text.strip():
        raise QuestionFileError(f"{path}: the question file is empty")
    if text.lstrip().startswith("["):
        try:
            records = json.loads(text)
        except json.JSONDecodeError as err:
            raise QuestionFileError(
                f"{path}: not valid JSON (line {err.lineno}, column {err.colno}: {err.msg}); a JSON list must parse "
                "whole (JSONL, one object per line, lets one bad line be skipped)"
            ) from None
        if not records:
            raise QuestionFileError(f"{path}: the question list is empty")
        return records, [f"{path}:record {i + 1}" for i in range(len(records))], decoded.note
    records, sources = [], []
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError as err:
            records.append(_BadLine(f"not valid JSON ({err.msg}, column {err.colno})"))
        sources.append(f"{path}:line {lineno}")
    if not any(isinstance(r, dict) for r in records):
        first = records[0].detail if isinstance(records[0], _BadLine) else f"not an object: {type(records[0]).__name__}"
        raise QuestionFileError(f"{path}: neither a JSON list nor JSONL of objects ({sources[0]}: {first})")
    return records, sources, decoded.note


def questions_from_file(
    path: str | Path, media_root: str | Path | None = None, encoding: str = "auto"
) -> tuple[list[Question], str]:
    """Every question of a file, checked (media paths relative to ``media_root``, default: the file's folder).

    Returns:
        ``(questions, note)``: questions in file order, the unusable ones carrying their ``error``; ``note``
        says how the file was decoded when it was not UTF-8.
    """
    path = Path(path)
    records, sources, note = read_question_records(path, encoding)
    root = media_root if media_root is not None else path.parent
    pope = POPE_FILE.fullmatch(path.name)
    questions = []
    for question, record in zip(questions_from_records(records, root, sources), records):
        if isinstance(record, _BadLine):
            question.error = InvalidQuestion("invalid_json", record.detail)
        if pope is not None:
            question.meta.setdefault("category", pope.group(1))
        questions.append(question)
    return questions, note


def questions_from_json(path: str | Path, media_root: str | Path | None = None) -> list[Question]:
    """Questions from a JSON-list or JSONL file (see :func:`questions_from_file`)."""
    return questions_from_file(path, media_root)[0]
