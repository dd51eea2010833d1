"""The fields of a LLaVA / Video-LLaVA record, checked one by one: the one parser every reader of records uses.

A record is a JSON object::

    {"id": "000001", "image": "coco/1.jpg", "conversations": [{"from": "human", "value": "<image>\\nWhat?"},
                                                             {"from": "gpt", "value": "A cat."}]}
    {"question_id": 1, "image": "COCO_val2014_000000016631.jpg", "text": "Is there a person?", "label": "yes"}

- its name: the first of ``question_id``, ``key``, ``id`` (:mod:`lvlm.core.record_identity` says why);
- media: ``image``, ``video`` and a plugin modality's field, each a path or a list of paths;
- ``conversations``: ``{"from": "human"|"gpt", "value": str}`` turns; or, in a question file, ``question``
  (else ``text``, as POPE's files name it).

Every problem is a :class:`RecordError` naming the field and, once the reader adds them, the file, the record
(line or position) and its name. ``lvlm shards``, training, ``lvlm predict`` and ``lvlm eval --model`` skip such a
record, count it and list it with its reason; none of them stops for one record.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import Any

from lvlm.core.record_identity import IDENTITY_FIELDS, is_identity
from lvlm.core.text_files import InputFileError

NAME_MAX = 255  # bytes per path component (Linux, macOS)
PATH_MAX = 4096  # bytes per path
HUMAN, GPT = "human", "gpt"
TURN_SHAPE = "{'from': 'human'|'gpt', 'value': str}"


class RecordError(InputFileError, ValueError):
    """One record that cannot be used.

    Attributes:
        reason: A short code for counting (``not_an_object``, ``wrong_type``, ``missing_field``, ``bad_path``,
            ``invalid_json``, ``duplicate_key``).
        detail: What is wrong, in words.
        field: The field at fault (None: the record as a whole).
        where: ``FILE:line N`` or ``FILE:record N`` when known.
        identity: The record's name when it has one.
    """

    def __init__(
        self, reason: str, detail: str, field: str | None = None, *, where: str = "", identity: str | None = None
    ) -> None:
        self.reason, self.detail, self.field, self.where, self.identity = reason, detail, field, where, identity
        named = f" (id {identity!r})" if identity is not None else ""
        located = f"{where}{named}: " if where or named else ""
        super().__init__(located + (f"field {field!r}: " if field else "") + detail)

    def at(self, where: str, identity: str | None) -> RecordError:
        """The same error, located in a file (``FILE:line N``) and naming the record."""
        return RecordError(self.reason, self.detail, self.field, where=where, identity=identity)

    def __reduce__(self) -> tuple[Any, ...]:  # crosses process boundaries (multi-process prediction)
        return _rebuild, (self.reason, self.detail, self.field, self.where, self.identity)


def _rebuild(reason: str, detail: str, field: str | None, where: str, identity: str | None) -> RecordError:
    return RecordError(reason, detail, field, where=where, identity=identity)


def record_object(value: Any) -> Mapping[str, Any]:
    """``value`` if it is a JSON object holding only valid Unicode and well-typed name fields, else raise."""
    if not isinstance(value, Mapping):
        raise RecordError("not_an_object", f"a record must be a JSON object, got {type(value).__name__}")
    try:
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError as err:
        raise RecordError("wrong_type", f"the record holds text that is not valid Unicode ({err.reason})") from None
    except (TypeError, ValueError):
        pass  # a value JSON cannot hold (Path, bytes) given in memory: its own field's check names it
    for name in IDENTITY_FIELDS:
        if value.get(name) is not None and not is_identity(value[name]):
            raise RecordError("wrong_type", f"must be a non-empty string or an integer, got {value[name]!r:.80}", name)
    return value


def conversation_turns(value: Any) -> list[dict[str, str]]:
    """A record's ``conversations`` as ``[{"from", "value"}]`` turns, each checked (no order is required)."""
    if not isinstance(value, list) or not value:
        raise RecordError("wrong_type", f"must be a non-empty list of turns, got {value!r:.80}", "conversations")
    for i, turn in enumerate(value):
        if not (isinstance(turn, dict) and turn.get("from") in (HUMAN, GPT) and isinstance(turn.get("value"), str)):
            raise RecordError("wrong_type", f"turn {i} must be {TURN_SHAPE}, got {turn!r:.80}", "conversations")
    return [{"from": turn["from"], "value": turn["value"]} for turn in value]


def training_turns(value: Any) -> list[tuple[str, str]]:
    """``(role, text)`` turns of a training conversation: leading gpt turns dropped, then human/gpt alternating.

    A leading ``gpt`` turn (an answer with no question) is dropped, as the original Video-LLaVA does.
    """
    turns = [(turn["from"], turn["value"]) for turn in conversation_turns(value)]
    while turns and turns[0][0] == GPT:
        turns.pop(0)
    if not turns:
        raise RecordError("missing_field", "has no human turn", "conversations")
    for i, (role, _) in enumerate(turns):
        if role != (HUMAN if i % 2 == 0 else GPT):
            detail = f"turns must alternate human/gpt; turn {i} (after leading gpt turns) is {role!r}"
            raise RecordError("wrong_type", detail, "conversations")
    return turns


def question_turns(value: Any) -> list[dict[str, str]]:
    """``conversations`` of a question: checked turns with at least one human turn to answer."""
    turns = conversation_turns(value)
    if not any(turn["from"] == HUMAN for turn in turns):
        raise RecordError("missing_field", "has no human turn to answer", "conversations")
    return turns


def question_text(record: Mapping[str, Any]) -> tuple[str, str]:
    """``(field, text)`` of a question record without ``conversations``: ``question``, else POPE's ``text``."""
    for name in ("question", "text"):
        if name in record:
            if not isinstance(record[name], str) or not record[name].strip():
                raise RecordError("wrong_type", f"must be a non-empty string, got {record[name]!r:.80}", name)
            return name, record[name]
    raise RecordError("missing_field", f"needs 'question' (or 'text', or 'conversations'); has {sorted(record)[:12]}")


def media_paths(record: Mapping[str, Any], field: str) -> list[str]:
    """The paths a media field (``image``, ``video``, ...) names, as a list (none when the field is absent).

    Raises:
        RecordError: ``wrong_type`` (not a path or a list of paths) or ``bad_path`` (:func:`path_problem`).
    """
    value = record.get(field)
    if value is None:
        return []
    values = [value] if isinstance(value, (str, os.PathLike)) else value
    if not isinstance(values, list) or not all(isinstance(v, (str, os.PathLike)) for v in values):
        raise RecordError("wrong_type", f"must be a path or a list of paths, got {value!r:.80}", field)
    paths = [os.fspath(v) for v in values]
    for path in paths:
        if problem := path_problem(path):
            raise RecordError("bad_path", f"path {path!r:.120}: {problem}", field)
    return paths


def path_problem(path: str) -> str | None:
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
