"""Caption-pair shards (img2dataset, video2dataset) as a stage-1 source: ``key.jpg|mp4`` + ``key.txt`` (+ ``key.json``).

Such a sample has one medium and its caption but no conversation. A source marked ``format: captions`` turns
each one into the one-turn conversation stage 1 trains on::

    human: "<image>\\nDescribe the image briefly."    (the placeholder, a newline, then the prompt)
    gpt:   "<the caption>"

The prompt is configurable per source (``prompt``); ``{media}`` in it becomes ``image`` or ``video``, and a
prompt that already holds a ``<image>``/``<video>`` placeholder is used as written. The caption is the ``txt``
member (UTF-8), else the ``caption`` field of the ``json`` member. The ``json`` member's other fields (url,
width, ...) are kept as metadata.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from lvlm.data.sample_errors import PlaceholderMismatchError, SampleFormatError
from lvlm.data.sample_format import media_members
from lvlm.data.shard_io import expand_pattern
from lvlm.models.modality import Modality

CAPTIONS_FORMAT = "captions"
DEFAULT_CAPTION_PROMPT = "Describe the {media} briefly."


def caption_record(
    raw: Mapping[str, Any], prompt: str = DEFAULT_CAPTION_PROMPT, modalities: Sequence[Modality] = ()
) -> dict[str, Any]:
    """The record (``conversations`` + metadata) of a caption-pair sample.

    Args:
        raw: The raw WebDataset sample (member bytes).
        prompt: The human turn's text (see the module docstring).
        modalities: The modalities whose members the sample may hold (its one item names the placeholder).

    Raises:
        SampleFormatError: No caption, a caption that is not UTF-8 text, or a ``json`` member that is not JSON.
        PlaceholderMismatchError: Not exactly one image or video.
    """
    key = str(raw.get("__key__", "?"))
    meta = _json_member(raw, key)
    counts = {name: len(items) for name, items in media_members(raw, modalities).items()}
    if sum(counts.values()) != 1:
        found = ", ".join(f"{n} {name}" for name, n in counts.items()) or "no media"
        raise PlaceholderMismatchError(key, f"a caption sample needs exactly one media item, found {found}")
    modality = next(m for m in modalities if counts[m.name])
    caption = _caption(raw, meta, key)
    if any(m.token in prompt for m in modalities):
        human = prompt
    else:
        human = f"{modality.token}\n{prompt.replace('{media}', modality.name)}"
    conversations = [{"from": "human", "value": human}, {"from": "gpt", "value": caption}]
    return {k: v for k, v in meta.items() if k != "conversations"} | {"conversations": conversations}


def _json_member(raw: Mapping[str, Any], key: str) -> dict[str, Any]:
    if "json" not in raw:
        return {}
    try:
        value = json.loads(raw["json"])
    except (ValueError, UnicodeDecodeError) as err:
        raise SampleFormatError(key, f"the 'json' member is not valid JSON ({err})") from err
    return value if isinstance(value, dict) else {}


def _caption(raw: Mapping[str, Any], meta: Mapping[str, Any], key: str) -> str:
    if "txt" in raw:
        data = raw["txt"]
        try:
            text = data.decode("utf-8") if isinstance(data, (bytes, bytearray)) else str(data)
        except UnicodeDecodeError as err:
            raise SampleFormatError(key, f"the 'txt' caption is not UTF-8 text ({err})") from err
    else:
        text = meta.get("caption") if isinstance(meta.get("caption"), str) else ""
    if not text.strip():
        raise SampleFormatError(key, "a caption sample needs a non-empty 'txt' member (or a 'caption' in its json)")
    return text.strip()


def check_source_formats(sources: Sequence[Mapping[str, Any]]) -> None:
    """Refuse a data source whose ``format`` is unknown or whose ``prompt`` is not text (names the pattern)."""
    for source in sources:
        fmt = source.get("format", "conversations")
        if fmt not in ("conversations", CAPTIONS_FORMAT):
            raise ValueError(f"data source {source.get('pattern')!r}: format must be 'conversations' or 'captions'")
        if "prompt" in source and (fmt != CAPTIONS_FORMAT or not isinstance(source["prompt"], str)):
            raise ValueError(f"data source {source.get('pattern')!r}: 'prompt' is a string, for format 'captions'")


def caption_prompts(sources: Sequence[Mapping[str, Any]]) -> dict[str, str]:
    """Shard URL -> prompt for every caption source (patterns expanded now: the shards must exist)."""
    prompts: dict[str, str] = {}
    for source in sources:
        if source.get("format") == CAPTIONS_FORMAT:
            prompt = source.get("prompt", DEFAULT_CAPTION_PROMPT)
            prompts.update(dict.fromkeys(expand_pattern(source["pattern"]), prompt))
    return prompts
