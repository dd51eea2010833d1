"""Prediction inputs: one question record (a JSON object) checked and read into a :class:`Question`.

A record (one object of a JSON list or one line of a JSONL file)::

    {"id": "q1", "image": "coco/1.jpg", "question": "What colour is the car?", "answer": "red", ...}
    {"key": "q2", "video": ["a.mp4"], "conversations": [{"from": "human", "value": "<video>\\nWhat happens?"},
                                                        {"from": "gpt", "value": "a dog runs"}]}
    {"question_id": 1, "image": "COCO_val2014_000000016631.jpg", "text": "Is there a person?", "label": "yes"}

``key``/``id``/``question_id`` name the question (its position when none is given); ``image``, ``video`` and
the field of every installed modality (a plugin's ``depth``) are a path or a list of paths, relative to
``media_root``; the question is ``question``, else ``text`` (POPE's
files), markers added in front, or ``conversations`` (LLaVA turns, the last gpt turn being the reference);
every other field is metadata, passed through to the prediction record unchanged. The Video-ChatGPT QA files
(``test_q.json``: ``video_name``, ``question``, ``question_id``) are read as they are: the video file is found
by name in ``media_root``.

A record that cannot be a question (not an object, a missing or mistyped field, a repeated key) becomes a
:class:`Question` carrying an :class:`InvalidQuestion` error: it is skipped and reported, never fatal.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lvlm.inference.prompts import question_conversation
from lvlm.modalities.catalog import (
    in_marker_order,
    installed_modality_classes,
    installed_modality_names,
    unbound_modality,
)
from lvlm.models.modality import Modality

KEY_FIELDS = ("key", "id", "question_id")
CONSUMED = ("key", "id", "question", "conversations", "answer")


class InvalidQuestion(ValueError):
    """A record that cannot be asked; ``reason`` is a short code (``missing_field``, ``wrong_type``, ...)."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason


@dataclass
class Question:
    """One question to answer.

    Attributes:
        index: position in the input (the merge order of multi-process prediction and the resume position).
        key: the question's own key, copied to its prediction.
        conversations: LLaVA turns ending with the human turn to answer.
        media: ``(kind, source)`` items in marker order per kind; a source is a path, bytes or a list of frames.
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


def _paths(record: Mapping[str, Any], kind: str) -> list[str]:
    value = record.get(kind)
    if value is None:
        return []
    values = [value] if isinstance(value, (str, os.PathLike)) else value
    if not isinstance(values, list) or not all(isinstance(v, (str, os.PathLike)) and str(v) for v in values):
        raise InvalidQuestion("wrong_type", f"field {kind!r} must be a path or a list of paths, got {value!r:.80}")
    return [os.fspath(v) for v in values]


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


def check_conversations(conversations: Any) -> list[dict[str, Any]]:
    """``conversations`` as a list of ``{"from": "human"|"gpt", "value": str}`` with a human turn, or raise."""
    if not isinstance(conversations, list) or not conversations:
        raise InvalidQuestion(
            "wrong_type", f"field 'conversations' must be a non-empty list, got {conversations!r:.80}"
        )
    for i, turn in enumerate(conversations):
        if (
            not isinstance(turn, dict)
            or turn.get("from") not in ("human", "gpt")
            or not isinstance(turn.get("value"), str)
        ):
            raise InvalidQuestion(
                "wrong_type", f"conversations[{i}] must be {{'from': 'human'|'gpt', 'value': str}}, got {turn!r:.80}"
            )
    if not any(turn["from"] == "human" for turn in conversations):
        raise InvalidQuestion("missing_field", "conversations have no human turn to answer")
    return list(conversations)


def record_key(index: int, record: Any) -> str:
    """The key a record names (its position when it names none or is not an object)."""
    if isinstance(record, Mapping):
        for name in KEY_FIELDS:
            value = record.get(name)
            if isinstance(value, (str, int)) and not isinstance(value, bool) and str(value):
                return str(value)
    return str(index)


def _check_key(record: Mapping[str, Any]) -> None:
    for name in KEY_FIELDS:
        value = record.get(name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, (str, int)) or not str(value)):
            raise InvalidQuestion("wrong_type", f"field {name!r} must be a non-empty string or an integer")


def _video_file(root: Path, name: str) -> str:
    """``video_name`` of test_q.json has no extension (and ActivityNet files add ``v_``): find the file."""
    extensions = [ext for cls in installed_modality_classes().values() if cls.uses_frames for ext in cls.extensions]
    for stem in (name, f"v_{name}"):
        for candidate in [stem, *(f"{stem}.{ext}" for ext in extensions)]:
            if (root / candidate).is_file():
                return candidate
    return name  # reported as a missing file


def _question_text(record: Mapping[str, Any]) -> tuple[str, str]:
    """``(field, text)`` of a record's question (``question``, else POPE's ``text``)."""
    for name in ("question", "text"):
        if name in record:
            if not isinstance(record[name], str) or not record[name].strip():
                raise InvalidQuestion("wrong_type", f"field {name!r} must be a non-empty string")
            return name, record[name]
    raise InvalidQuestion(
        "missing_field", f"needs 'question' (or 'text', or 'conversations'); has {sorted(record)[:12]}"
    )


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
        InvalidQuestion: the record is not an object, lacks a question, or has a field of the wrong type.
    """
    if not isinstance(record, Mapping):
        raise InvalidQuestion("not_an_object", f"expected a JSON object, got {type(record).__name__}")
    _check_key(record)
    key = record_key(index, record)
    root = Path(media_root) if media_root is not None else None
    if "video_name" in record and "video" not in record:  # the Video-ChatGPT QA files (test_q.json)
        if not isinstance(record["video_name"], (str, int)):
            raise InvalidQuestion("wrong_type", "field 'video_name' must be a string")
        record = {**record, "video": _video_file(root or Path("."), str(record["video_name"]))}
    media = [
        (kind, os.fspath(root / p) if root is not None else p) for kind in media_fields() for p in _paths(record, kind)
    ]
    answer = record.get("answer")
    consumed = CONSUMED
    if "conversations" in record:
        conversations = check_conversations(record["conversations"])
        if conversations[-1]["from"] == "gpt" and answer is None:
            answer = conversations[-1]["value"]
        text = last_human_text(conversations, modalities)
    else:
        name, text = _question_text(record)
        by_name = _modalities(modalities, [kind for kind, _ in media])
        conversations = question_conversation(text, [by_name[kind] for kind, _ in media])
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
        except InvalidQuestion as err:
            yield Question(index, record_key(index, record), [], error=err, source=source)
            continue
        if question.key in seen:
            question.error = InvalidQuestion(
                "duplicate_key", f"key {question.key!r} already used at {seen[question.key]}"
            )
        else:
            seen[question.key] = source
        yield question
