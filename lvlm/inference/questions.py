"""Prediction inputs: one question record (a JSON object) checked and read into a :class:`Question`.

A record (one object of a JSON list or one line of a JSONL file)::

    {"id": "q1", "image": "coco/1.jpg", "question": "What colour is the car?", "answer": "red", ...}
    {"key": "q2", "video": ["a.mp4"], "conversations": [{"from": "human", "value": "<video>\\nWhat happens?"},
                                                        {"from": "gpt", "value": "a dog runs"}]}
    {"question_id": 1, "image": "COCO_val2014_000000016631.jpg", "text": "Is there a person?", "label": "yes"}

The record is parsed by :mod:`lvlm.data.record_format`, the parser ``lvlm shards`` and training use too: the
question's key is its identity (``question_id``, else ``key``, else ``id``: :mod:`lvlm.core.record_identity`;
its position when it has none); ``image``, ``video`` and the field of every installed modality (a plugin's
``depth``) are a path or a list of paths, relative to ``media_root``; the question is ``question``, else
``text`` (POPE's files), markers added in front, or ``conversations`` (LLaVA turns, the last gpt turn being the
reference); every other field is metadata, passed through to the prediction record unchanged. The Video-ChatGPT QA files
(``test_q.json``: ``video_name``, ``question``, ``question_id``) are read as they are: the video file is found
by name in ``media_root``.

A record that cannot be a question (not an object, a missing or mistyped field, a repeated key) becomes a
:class:`Question` carrying a :class:`~lvlm.data.record_format.RecordError`: it is skipped and reported, never
fatal.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lvlm.core.record_identity import record_identity
from lvlm.data.record_format import RecordError, media_paths, question_text, question_turns, record_object
from lvlm.inference.prompts import question_conversation
from lvlm.modalities.catalog import (
    in_marker_order,
    installed_modality_classes,
    installed_modality_names,
    unbound_modality,
)
from lvlm.models.modality import Modality

CONSUMED = ("key", "id", "question", "conversations", "answer")


@dataclass
class Question:
    """One question to answer.

    Attributes:
        index: position in the input (the merge order of multi-process prediction and the resume position).
        key: the question's own key, copied to its prediction.
        conversations: LLaVA turns ending with the human turn to answer.
        media: ``(modality, source)`` items in marker order per modality; a source is a path, bytes or a list of frames.
        question: the question text without markers (written to the prediction record).
        answer: the reference answer, or None.
        meta: other input fields, passed through.
        error: why the question cannot be asked (reported as a skipped question).
        source: where it was read (``file:line N``, ``file:record N`` or a shard URL), for reports.
    """

    index: int
    key: str
    conversations: list[dict[str, Any]]
    media: list[tuple[str, Any]] = field(default_factory=list)
    question: str = ""
    answer: Any = None
    meta: dict[str, Any] = field(default_factory=dict)
    error: Exception | None = None
    source: str = ""


def media_fields() -> list[str]:
    """Record fields naming media: one per installed modality, in the order markers take (videos first)."""
    return in_marker_order(installed_modality_names())


def last_human_text(conversations: list[dict[str, Any]], modalities: Mapping[str, Modality] | None = None) -> str:
    humans = [t.get("value", "") for t in conversations if isinstance(t, dict) and t.get("from") == "human"]
    if not humans:
        return ""
    markers = "|".join(
        re.escape(m.token) for m in _modalities(modalities, [*installed_modality_names(), *(modalities or {})]).values()
    )
    return re.sub(f"(?:{markers})\n?", "", humans[-1]).strip()


def record_key(index: int, record: Any) -> str:
    """The key a record names (its identity; its position when it names none or is not an object)."""
    return record_identity(record) or str(index)


def _video_file(root: Path, name: str) -> str:
    """``video_name`` of test_q.json has no extension (and ActivityNet files add ``v_``): find the file."""
    extensions = [ext for cls in installed_modality_classes().values() if cls.uses_frames for ext in cls.extensions]
    for stem in (name, f"v_{name}"):
        for candidate in [stem, *(f"{stem}.{ext}" for ext in extensions)]:
            if (root / candidate).is_file():
                return candidate
    return name  # reported as a missing file


def _modalities(given: Mapping[str, Modality] | None, names: Iterable[str]) -> dict[str, Modality]:
    """The modality of each name: the model's when given, else a tower-less one (its default placeholder)."""
    return {name: (given or {}).get(name) or unbound_modality(name) for name in dict.fromkeys(names)}


def question_from_record(
    index: int,
    record: Any,
    media_root: str | Path | None = None,
    source: str = "",
    modalities: Mapping[str, Modality] | None = None,
) -> Question:
    """A :class:`Question` from one JSON record (see the module docstring); markers are the placeholders of
    ``modalities`` (the model's), else of the installed modalities.

    Raises:
        RecordError: the record is not an object (or a JSONL line that is not JSON), lacks a question, or has a
            field of the wrong type.
    """
    if isinstance(record, RecordError):  # a JSONL line that is not JSON (lvlm.data.record_files)
        raise record
    record = record_object(record)
    key = record_key(index, record)
    root = Path(media_root) if media_root is not None else None
    if "video_name" in record and "video" not in record:  # the Video-ChatGPT QA files (test_q.json)
        if not isinstance(record["video_name"], (str, int)):
            raise RecordError("wrong_type", "must be a string", "video_name")
        record = {**record, "video": _video_file(root or Path("."), str(record["video_name"]))}
    media = [
        (modality, os.fspath(root / p) if root is not None else p)
        for modality in media_fields()
        for p in media_paths(record, modality)
    ]
    answer = record.get("answer")
    consumed = CONSUMED
    if "conversations" in record:
        conversations = question_turns(record["conversations"])
        if conversations[-1]["from"] == "gpt" and answer is None:
            answer = conversations[-1]["value"]
        text = last_human_text(conversations, modalities)
    else:
        name, text = question_text(record)
        by_name = _modalities(modalities, [modality for modality, _ in media])
        conversations = question_conversation(text, [by_name[modality] for modality, _ in media])
        consumed = (*CONSUMED, name)
    meta = {k: v for k, v in record.items() if k not in consumed}
    return Question(index, key, conversations, media, text, answer, meta, source=source)


def questions_from_records(
    records: Iterable[Any],
    media_root: str | Path | None = None,
    sources: Iterable[str] | None = None,
    modalities: Mapping[str, Modality] | None = None,
) -> Iterator[Question]:
    """Questions from records; an unusable record or a repeated key gives a Question with an ``error``.
    ``modalities`` (the model's) write the markers, as in :func:`question_from_record`."""
    seen: dict[str, str] = {}
    where = iter(sources) if sources is not None else None
    for index, record in enumerate(records):
        source = next(where) if where is not None else f"record {index + 1}"
        try:
            question = question_from_record(index, record, media_root, source, modalities)
        except RecordError as err:
            yield Question(index, record_key(index, record), [], error=err, source=source)
            continue
        if question.key in seen:
            question.error = RecordError("duplicate_key", f"key {question.key!r} already used at {seen[question.key]}")
        else:
            seen[question.key] = source
        yield question
