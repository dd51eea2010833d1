"""Questions (with media and history) → tokenized prompts, through the data side's templates and tokenization.

A question about media gets the markers first, then ``"\\n"`` and the text (``<video><image>\\nWhat ...``), as the
original's CLI, demo and evaluation scripts write it (spec §3.2): videos first, then images, no separators.
Placeholder expansion (one id per visual token) is :func:`lvlm.data.tokenization.tokenize_prompt`'s.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from lvlm.data.collate import ProcessedSample
from lvlm.data.templates import GPT, HUMAN
from lvlm.data.tokenization import tokenize_prompt
from lvlm.inference.session import InferenceSession
from lvlm.modalities.catalog import in_marker_order


def with_markers(question: str, kinds: Sequence[str]) -> str:
    """``question`` preceded by one marker per media item and a newline, unless it places its markers itself."""
    markers = [f"<{kind}>" for kind in in_marker_order(kinds)]
    if not markers or any(marker in question for marker in set(markers)):
        return question
    return "".join(markers) + "\n" + question


def question_conversation(question: str, kinds: Sequence[str] = ()) -> list[dict[str, str]]:
    """A one-question conversation in LLaVA form, markers placed as the original does."""
    return [{"from": HUMAN, "value": with_markers(question, kinds)}]


@dataclass
class Conversation:
    """A multi-turn chat: media attach to the first user turn (as the original CLI does).

    Attributes:
        kinds: the modality of each attached media item (``image``, ``video``, ...), in attachment order.
        turns: LLaVA-form turns so far.
    """

    kinds: list[str] = field(default_factory=list)
    turns: list[dict[str, str]] = field(default_factory=list)

    def ask(self, question: str) -> list[dict[str, str]]:
        """The conversation with ``question`` appended as the next user turn (not stored until answered)."""
        text = with_markers(question, self.kinds) if not self.turns else question
        return [*self.turns, {"from": HUMAN, "value": text}]

    def record(self, question: str, answer: str) -> None:
        """Keep a finished exchange as history."""
        self.turns = [*self.ask(question), {"from": GPT, "value": answer}]


def prepare_prompt(
    session: InferenceSession,
    conversations: list[dict[str, Any]],
    media: Sequence[tuple[str, torch.Tensor]] = (),
    *,
    key: str = "?",
    meta: dict[str, Any] | None = None,
    max_length: int | None = None,
) -> ProcessedSample:
    """Tokenize a generation prompt and pair each marker with its media tensor.

    Args:
        session: the loaded checkpoint.
        conversations: LLaVA turns ending with the human turn to answer (a trailing gpt turn becomes the reference).
        media: ``(modality name, tensor)`` items; the i-th marker of a modality takes its i-th item.
        key: sample key, for errors.
        meta: passed through to the batch.
        max_length: longest prompt allowed in tokens (default: the model's positions minus one to answer).

    Raises:
        BadSampleError: markers and media disagree in number, the JSON is malformed, or the prompt is too long.
    """
    modalities = list(session.modalities.values())
    counts: dict[str, int] = {modality.name: 0 for modality in modalities}
    by_kind: dict[str, list[torch.Tensor]] = {}
    for kind, tensor in media:
        counts[kind] = counts.get(kind, 0) + 1
        by_kind.setdefault(kind, []).append(tensor)
    sample = tokenize_prompt(
        conversations,
        session.tokenizer,
        session.template,
        modalities,
        session.num_frames,
        max_length if max_length is not None else session.max_length - 1,
        key=key,
        media_counts=counts,
    )
    by_token = {modality.token: modality for modality in modalities}
    ordered, names = [], []
    for marker in sample.markers:
        modality = by_token[marker]
        ordered.append((modality.input_name, by_kind[modality.name].pop(0)))
        names.append(modality.name)
    meta = dict(meta or {})
    if sample.reference is not None:
        meta.setdefault("reference", sample.reference)
    modality = "+".join(dict.fromkeys(names)) or "text"
    return ProcessedSample(
        key=key, input_ids=sample.input_ids, labels=None, media=ordered, modality=modality, meta=meta
    )
