"""An offline judge: normalised string matching, 'yes' with score 5 or 'no' with score 0."""

from __future__ import annotations

import re
from typing import Any

from lvlm.eval.judges.base import Judge, JudgeItem, Judgment
from lvlm.eval.vqa_normalize import normalize_vqa_answer

_NON_WORD = re.compile(r"[^\w\s]")


def normalize_answer(text: str) -> str:
    """VQA normalisation (punctuation, number words -> digits, articles, contractions), then no punctuation left."""
    return " ".join(_NON_WORD.sub(" ", normalize_vqa_answer(text)).split())


def answers_match(prediction: str, answer: str, contains: bool = True) -> bool:
    """Whether the normalised answer equals the normalised prediction or (``contains``) is in it as whole words."""
    pred, ref = normalize_answer(prediction), normalize_answer(answer)
    if not ref:
        return pred == ref
    if pred == ref:
        return True
    return contains and f" {ref} " in f" {pred} "


class ExactMatchJudge(Judge):
    """No network, no model: deterministic and comparable across machines and years.

    Args:
        contains: also accept a prediction that contains the answer as whole words ("a dog is running" for
            "dog"); with False the normalised strings must be equal.
    """

    kind = "exact"

    def __init__(self, contains: bool = True, cache: Any | None = None, workers: int = 1) -> None:
        super().__init__(cache=cache, workers=workers)
        self.contains = contains

    def _judge(self, item: JudgeItem) -> Judgment:
        hit = answers_match(item.prediction, item.answer, self.contains)
        return Judgment("yes", 5) if hit else Judgment("no", 0)

    def describe(self) -> dict[str, Any]:
        mode = "contains" if self.contains else "equal"
        return {"kind": self.kind, "model": f"normalized-{mode}", "prompt_hash": None, "base_url_host": None}
