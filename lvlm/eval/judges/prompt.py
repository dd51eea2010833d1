"""The Video-ChatGPT judging prompt used by Video-LLaVA's ``eval_video_qa.py``, verbatim, and its parser."""

from __future__ import annotations

import ast
import hashlib
import json
import re
from typing import Any

PROMPT_VERSION = "video-chatgpt-zero-shot-qa"

# Verbatim from the original (including "------" glued to the sentence and the double space in "is  a").
SYSTEM_PROMPT = (
    "You are an intelligent chatbot designed for evaluating the correctness of generative outputs for "
    "question-answer pairs. Your task is to compare the predicted answer with the correct answer and determine "
    "if they match meaningfully. Here's how you can accomplish the task:------##INSTRUCTIONS: - Focus on the "
    "meaningful match between the predicted answer and the correct answer.\n- Consider synonyms or paraphrases "
    "as valid matches.\n- Evaluate the correctness of the prediction compared to the answer."
)
USER_PROMPT_HEAD = "Please evaluate the following video-based question-answer pair:\n\n"
USER_PROMPT_TAIL = (
    "Provide your evaluation only as a yes/no and score where the score is an integer value between 0 and 5, "
    "with 5 indicating the highest meaningful match. Please generate the response in the form of a Python "
    "dictionary string with keys 'pred' and 'score', where value of 'pred' is  a string of 'yes' or 'no' and "
    "value of 'score' is in INTEGER, not STRING.DO NOT PROVIDE ANY OTHER OUTPUT TEXT OR EXPLANATION. Only "
    "provide the Python dictionary string. For example, your response should look like this: "
    "{'pred': 'yes', 'score': 4.8}."
)


def user_prompt(question: str, answer: str, prediction: str) -> str:
    """The user message for one question-answer pair."""
    return (
        f"{USER_PROMPT_HEAD}Question: {question}\nCorrect Answer: {answer}\nPredicted Answer: {prediction}\n\n"
        f"{USER_PROMPT_TAIL}"
    )


def build_messages(question: str, answer: str, prediction: str) -> list[dict[str, str]]:
    """Chat messages (system + user) for one pair."""
    return [
        {"role": "system", "content": SYSTEM_PROMPT},
        {"role": "user", "content": user_prompt(question, answer, prediction)},
    ]


def prompt_hash() -> str:
    """First 16 hex digits of the SHA-256 of the prompt texts: report it with every judged number."""
    text = json.dumps([PROMPT_VERSION, SYSTEM_PROMPT, USER_PROMPT_HEAD, USER_PROMPT_TAIL])
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


class MalformedReply(ValueError):
    """The judge's reply is not a dict string with 'pred' yes/no and an integer-castable 'score' in 0..5."""


_FENCE = re.compile(r"^```[a-zA-Z]*\s*(.*?)\s*```$", re.DOTALL)


def _literal(text: str) -> Any:
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        pass
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        raise MalformedReply(f"not a dict string: {text[:200]!r}") from None


def parse_judge_reply(text: str) -> tuple[str, int]:
    """Parse a reply like the original: ``ast.literal_eval`` of a dict string, also accepting code fences and JSON.

    Returns:
        ``(pred, score)`` with ``pred`` in {'yes', 'no'} (the original's substring test: 'yes' first) and
        ``score = int(reply['score'])`` (so 4.8 -> 4, as in the original).

    Raises:
        MalformedReply: anything else, including a score outside 0..5 (which the original would average in).
    """
    if not isinstance(text, str):
        raise MalformedReply(f"expected text, got {type(text).__name__}")
    text = text.strip()
    fenced = _FENCE.match(text)
    if fenced:
        text = fenced.group(1).strip()
    reply = _literal(text)
    if not isinstance(reply, dict) or "pred" not in reply or "score" not in reply:
        raise MalformedReply(f"expected a dict with keys 'pred' and 'score': {text[:200]!r}")
    pred_text = str(reply["pred"]).lower()
    pred = "yes" if "yes" in pred_text else "no" if "no" in pred_text else None
    if pred is None:
        raise MalformedReply(f"'pred' is neither yes nor no: {reply['pred']!r}")
    try:
        score = int(reply["score"])
    except (TypeError, ValueError, OverflowError):  # OverflowError: 1e999 is inf
        raise MalformedReply(f"'score' is not integer-castable: {reply['score']!r}") from None
    if not 0 <= score <= 5:
        raise MalformedReply(f"'score' {score} is outside 0..5")
    return pred, score
