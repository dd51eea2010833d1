"""A data source of a recipe (``data.init_args.sources.train`` / ``val`` / ``test``), typed.

jsonargparse validates every field: a misspelt key (``patern``) or a wrong type fails when the recipe is parsed,
naming the field.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, is_dataclass
from typing import Any, Literal


@dataclass(frozen=True)
class DataSource:
    """One source of shards.

    Attributes:
        pattern: shard paths: a brace or glob pattern, a manifest written by ``lvlm shards`` (``DIR/manifest.json``),
            an ``http(s)://`` or fsspec URL (``s3://`` with the ``s3`` extra), or a ``pipe:`` command.
        weight: its share of the training mix (resampled sampling); ignored for validation and test sets.
        format: ``conversations`` (lvlm shards) or ``captions`` (img2dataset / video2dataset caption pairs).
        prompt: for ``captions``, the question each caption answers (``{media}`` is the media kind).
    """

    pattern: str
    weight: float = 1.0
    format: Literal["conversations", "captions"] = "conversations"
    prompt: str | None = None


def source_dicts(sources: Sequence[DataSource | Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Plain dicts of the sources (what the streams read), ``None`` prompts left out."""
    out = []
    for source in sources:
        values = asdict(source) if is_dataclass(source) else dict(source)
        out.append({k: v for k, v in values.items() if not (k == "prompt" and v is None)})
    return out
