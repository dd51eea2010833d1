"""Judges for open-ended answers: ``exact`` (offline string matching) and ``openai`` (any compatible server)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lvlm.eval.judges.base import Judge, JudgeConfigError, JudgeError, JudgeItem, JudgeStats, Judgment
from lvlm.eval.judges.cache import JudgmentCache
from lvlm.eval.judges.exact import ExactMatchJudge
from lvlm.eval.judges.openai_compatible import OpenAICompatibleJudge

JUDGES: dict[str, type[Judge]] = {"exact": ExactMatchJudge, "openai": OpenAICompatibleJudge}


def make_judge(kind: str, cache_dir: str | Path | None = None, **options: Any) -> Judge:
    """Build a judge by kind (``exact`` or ``openai``) with its keyword options and an optional cache folder."""
    if kind not in JUDGES:
        raise ValueError(f"unknown judge {kind!r}; choose one of {sorted(JUDGES)}")
    cache = JudgmentCache(cache_dir) if cache_dir is not None else None
    return JUDGES[kind](cache=cache, **options)


__all__ = [
    "JUDGES",
    "ExactMatchJudge",
    "Judge",
    "JudgeConfigError",
    "JudgeError",
    "JudgeItem",
    "JudgeStats",
    "Judgment",
    "JudgmentCache",
    "OpenAICompatibleJudge",
    "make_judge",
]
