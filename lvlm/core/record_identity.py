"""What names a record: the one order of identity fields, shared by shards, prediction and evaluation.

A record is named by the first of ``question_id``, ``key``, ``id`` it holds (:data:`IDENTITY_FIELDS`):

- ``question_id`` first: it is how the Video-LLaVA and LLaVA evaluation files name a question (POPE, VQAv2,
  GQA, TextVQA, the Video-ChatGPT ``test_q.json``/``test_a.json``), and the answer files are matched by it;
- ``key`` next: lvlm's own name, the one it writes into every prediction record;
- ``id`` last: the LLaVA / Video-LLaVA training records' name.

So a prediction record (``key`` = the question's identity, ``question_id`` passed through) is named the same
when it is read back for evaluation, and a shard sample's key is the same identity (made safe for a file name).
A value is a non-empty string or an integer; ``None`` counts as absent.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

IDENTITY_FIELDS = ("question_id", "key", "id")


def identity_field(record: Mapping[str, Any]) -> str | None:
    """The field that names ``record`` (the first of :data:`IDENTITY_FIELDS` present and usable), or None."""
    for name in IDENTITY_FIELDS:
        if is_identity(record.get(name)):
            return name
    return None


def record_identity(record: Any) -> str | None:
    """The identity of a record as a string (None when it has none or is not an object)."""
    if not isinstance(record, Mapping):
        return None
    name = identity_field(record)
    return None if name is None else str(record[name])


def is_identity(value: Any) -> bool:
    """True for a value that can name a record: a non-empty string or an integer (not a bool)."""
    return (isinstance(value, str) and bool(value)) or (isinstance(value, int) and not isinstance(value, bool))
