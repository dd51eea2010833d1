"""Prediction inputs: a JSON list of questions or WebDataset shards, read into :class:`Question` values.

JSON list (one object per question)::

    [{"id": "q1", "image": "coco/1.jpg", "question": "What colour is the car?", "answer": "red", ...},
     {"key": "q2", "video": ["a.mp4"], "conversations": [{"from": "human", "value": "<video>\\nWhat happens?"},
                                                         {"from": "gpt", "value": "a dog runs"}]}]

``id``/``key``/``question_id`` name the question (the position in the list when none is given); ``image`` and
``video`` are a path or a list of paths, relative to ``media_root``; ``question`` (markers added in front) or
``conversations`` (LLaVA turns, the last gpt turn being the reference); every other field is metadata and is
passed through to the prediction record unchanged. The Video-ChatGPT QA files (``test_q.json``: ``video_name``,
``question``, ``question_id``) are read as they are: the video file is found by name in ``media_root``.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lvlm.data.sample_format import VIDEO_EXTENSIONS, media_members
from lvlm.inference.prompts import question_conversation

KEY_FIELDS = ("key", "id", "question_id")
CONSUMED = ("key", "id", "question", "conversations", "answer")
_MARKERS = re.compile(r"<(image|video)>\n?")


@dataclass
class Question:
    """One question to answer.

    Attributes:
        index: position in the input (the merge order of multi-process prediction).
        key: the question's own key, copied to its prediction.
        conversations: LLaVA turns ending with the human turn to answer.
        media: ``(kind, source)`` items in marker order per kind; a source is a path, bytes or a list of frames.
        question: the question text without markers (written to the prediction record).
        answer: the reference answer, or None.
        meta: other input fields, passed through.
        error: why the question cannot be asked (a malformed shard sample), reported as a skipped sample.
    """

    index: int
    key: str
    conversations: list[dict[str, Any]]
    media: list[tuple[str, Any]] = field(default_factory=list)
    question: str = ""
    answer: Any = None
    meta: dict[str, Any] = field(default_factory=dict)
    error: Exception | None = None


def _paths(value: Any) -> list[str]:
    if value is None:
        return []
    return [value] if isinstance(value, (str, os.PathLike)) else list(value)


def _last_human(conversations: list[dict[str, Any]]) -> str:
    humans = [t.get("value", "") for t in conversations if isinstance(t, dict) and t.get("from") == "human"]
    return _MARKERS.sub("", humans[-1]).strip() if humans else ""


def _video_file(root: Path, name: str) -> str:
    """``video_name`` of test_q.json has no extension (and ActivityNet files add ``v_``): find the file."""
    for stem in (name, f"v_{name}"):
        for candidate in [stem, *(f"{stem}.{ext}" for ext in VIDEO_EXTENSIONS)]:
            if (root / candidate).is_file():
                return candidate
    return name  # reported as a missing file


def question_from_record(index: int, record: Mapping[str, Any], media_root: str | Path | None = None) -> Question:
    """A :class:`Question` from one JSON object (see the module docstring).

    Raises:
        ValueError: the record has neither ``question`` nor ``conversations``.
    """
    key = next((str(record[k]) for k in KEY_FIELDS if record.get(k) is not None), str(index))
    root = Path(media_root) if media_root is not None else None
    if "video_name" in record and "video" not in record:  # the Video-ChatGPT QA files (test_q.json)
        record = {**record, "video": _video_file(root or Path("."), str(record["video_name"]))}
    media = [
        (kind, os.fspath(root / p) if root is not None else os.fspath(p))
        for kind in ("video", "image")
        for p in _paths(record.get(kind))
    ]
    answer = record.get("answer")
    if "conversations" in record:
        conversations = list(record["conversations"])
        if conversations and isinstance(conversations[-1], dict) and conversations[-1].get("from") == "gpt":
            answer = conversations[-1].get("value") if answer is None else answer
        text = _last_human(conversations)
    elif "question" in record:
        text = str(record["question"])
        conversations = question_conversation(text, [kind for kind, _ in media])
    else:
        raise ValueError(
            f"question {key!r} (record {index}): needs 'question' or 'conversations'; has {sorted(record)}"
        )
    meta = {k: v for k, v in record.items() if k not in CONSUMED}
    return Question(index, key, conversations, media, text, answer, meta)


def questions_from_records(
    records: Iterable[Mapping[str, Any]], media_root: str | Path | None = None
) -> Iterator[Question]:
    """Questions from in-memory records; duplicate keys are an error (they would hide a misalignment)."""
    seen: set[str] = set()
    for index, record in enumerate(records):
        question = question_from_record(index, record, media_root)
        if question.key in seen:
            raise ValueError(f"record {index}: duplicate question key {question.key!r}; keys must be unique")
        seen.add(question.key)
        yield question


def questions_from_json(path: str | Path, media_root: str | Path | None = None) -> Iterator[Question]:
    """Questions from a JSON list file (media paths relative to ``media_root``, default: the file's folder)."""
    path = Path(path)
    records = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(records, list):
        raise ValueError(f"{path}: expected a JSON list of question objects, got {type(records).__name__}")
    return questions_from_records(records, media_root if media_root is not None else path.parent)


def questions_from_shards(urls: str | list[str]) -> Iterator[Question]:
    """Questions from WebDataset shards in lvlm's sample format (read in order, never shuffled)."""
    import webdataset as wds

    patterns = [urls] if isinstance(urls, str) else list(urls)
    expanded = [url for pattern in patterns for url in wds.shardlists.expand_urls(pattern)]
    dataset = wds.WebDataset(expanded, shardshuffle=False, empty_check=False)
    for index, sample in enumerate(dataset):
        key = str(sample["__key__"])
        try:
            record = json.loads(sample["json"]) if "json" in sample else {}
            members = media_members(sample)
        except ValueError as err:
            yield Question(index, key, [], error=err)
            continue
        media = [("video", data) for _, data in members["videos"]]
        media += [("video", list(frames)) for _, frames in members["frames"]]
        media += [("image", data) for _, data in members["images"]]
        conversations = list(record.get("conversations", []))
        answer = record.get("answer")
        if conversations and conversations[-1].get("from") == "gpt" and answer is None:
            answer = conversations[-1].get("value")
        meta = {k: v for k, v in record.items() if k not in CONSUMED} | {"url": sample.get("__url__", "")}
        yield Question(index, key, conversations, media, _last_human(conversations), answer, meta)
