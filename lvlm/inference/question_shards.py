"""Questions from WebDataset shards in lvlm's sample format, read in order and never shuffled.

Every sample becomes a :class:`~lvlm.inference.questions.Question`. A sample that cannot be asked (its JSON
empty, not JSON or not an object, no human turn, an unknown member, a repeated key) and a part of a shard
that cannot be read (a truncated tar, a member that cannot be read) become questions carrying their error,
so they are skipped and reported with the shard and the key; the stream goes on.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from lvlm.core.errors import UserError
from lvlm.data.record_format import RecordError, question_turns, record_object
from lvlm.data.sample_errors import BadSampleError
from lvlm.data.sample_format import media_members
from lvlm.data.shard_io import expand_pattern, read_shards
from lvlm.inference.questions import CONSUMED, Question, last_human_text, media_fields
from lvlm.modalities.catalog import installed_modalities
from lvlm.models.modality import Modality


class ShardSourceError(UserError):
    """A ``--shards`` pattern that matches no shard."""


def shard_urls(patterns: Sequence[str]) -> list[str]:
    """Every shard URL of the patterns (brace and glob patterns expanded), in order.

    Raises:
        ShardSourceError: a pattern matches nothing.
    """
    urls: list[str] = []
    for pattern in patterns:
        try:
            urls += expand_pattern(pattern)
        except FileNotFoundError as err:
            raise ShardSourceError(f"--shards: {err}") from None
    return urls


def _unreadable(index: int, err: Exception) -> Question:
    url = next((a for a in err.args[1:] if isinstance(a, str)), "")
    detail = f"{type(err).__name__}: {err.args[0] if err.args else ''}"
    error = RecordError("unreadable_shard", f"the shard cannot be read from here on (truncated or corrupt?): {detail}")
    return Question(index, "?", [], error=error, source=url)


def question_from_sample(
    index: int, sample: dict[str, Any], modalities: Mapping[str, Modality] | None = None
) -> Question:
    """One raw WebDataset sample as a question (raises RecordError or BadSampleError when unusable); the question
    text leaves out the placeholders of ``modalities`` (the model's), else of the installed modalities.

    The sample's key is its ``__key__``: the record's identity made safe for a member name by ``lvlm shards``.
    """
    key = str(sample["__key__"])
    if "json" not in sample:
        raise RecordError("missing_field", "the sample has no .json member")
    try:
        record = json.loads(sample["json"])
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise RecordError("invalid_json", f"{key}.json is not valid JSON ({err})") from None
    conversations = question_turns(record_object(record).get("conversations"))
    members = media_members(sample, installed_modalities())
    media: list[tuple[str, Any]] = [(name, data) for name in media_fields() for _, data in members.get(name, [])]
    answer = record.get("answer")
    if conversations[-1]["from"] == "gpt" and answer is None:
        answer = conversations[-1]["value"]
    meta = {k: v for k, v in record.items() if k not in CONSUMED} | {"url": sample.get("__url__", "")}
    return Question(index, key, conversations, media, last_human_text(conversations, modalities), answer, meta)


def questions_from_shards(
    urls: str | Sequence[str], modalities: Mapping[str, Modality] | None = None
) -> Iterator[Question]:
    """Questions from shards (paths, brace or glob patterns); unusable ones carry their error (see above)."""
    urls = shard_urls([urls] if isinstance(urls, str) else list(urls))
    errors: list[Exception] = []
    seen: dict[str, str] = {}
    index = 0
    for sample in read_shards(urls, lambda err: errors.append(err) is None):
        for err in errors:
            yield _unreadable(index, err)
            index += 1
        errors.clear()
        url, key = str(sample.get("__url__", "")), str(sample.get("__key__", "?"))
        try:
            question = question_from_sample(index, sample, modalities)
        except (RecordError, BadSampleError) as err:
            question = Question(index, key, [], error=err)
        question.source = url
        if question.error is None and key in seen:
            question.error = RecordError("duplicate_key", f"key {key!r} already used in {seen[key]}")
        seen.setdefault(key, url)
        yield question
        index += 1
    for err in errors:  # a truncated last shard reports after its last sample
        yield _unreadable(index, err)
        index += 1
