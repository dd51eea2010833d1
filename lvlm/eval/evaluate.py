"""The one entry point every front end uses: ``evaluate_predictions(protocol, predictions, **options)``."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from lvlm.eval.results import EvalResult


def _protocols() -> dict[str, Callable[..., EvalResult]]:
    # Imported on use: POPE pulls in torch and torchmetrics, which the other protocols do not need.
    from lvlm.eval.pope import evaluate_pope
    from lvlm.eval.synthetic_qa import evaluate_synthetic
    from lvlm.eval.video_qa import evaluate_video_qa
    from lvlm.eval.vqa_accuracy import evaluate_vqa

    return {"video-qa": evaluate_video_qa, "pope": evaluate_pope, "vqa": evaluate_vqa, "synthetic": evaluate_synthetic}


PROTOCOLS = ("video-qa", "pope", "vqa", "synthetic")


def evaluate_predictions(
    protocol: str, predictions: str | Path | Iterable[Mapping[str, Any]], **options: Any
) -> EvalResult:
    """Score a prediction file (JSONL written by ``lvlm predict``) or in-memory records with one protocol.

    Args:
        protocol: ``video-qa`` (options: ``judge``, ``judge_options``, ``questions``, ``answers``,
            ``allow_missing``), ``pope`` (``questions_dir`` or ``question_files``, ``allow_missing``),
            ``vqa`` (``annotations``, ``allow_missing``) or ``synthetic``.
        predictions: path to a JSONL file, or an iterable of records.
        **options: the protocol's keyword arguments (see :mod:`lvlm.eval.video_qa`, :mod:`lvlm.eval.pope`,
            :mod:`lvlm.eval.vqa_accuracy`, :mod:`lvlm.eval.synthetic_qa`).
    """
    if protocol not in PROTOCOLS:
        raise ValueError(f"unknown evaluation protocol {protocol!r}; choose one of {list(PROTOCOLS)}")
    return _protocols()[protocol](predictions, **options)
