"""Questions (with media and history) → tokenized prompts, through the data side's templates and tokenization.

A question about media gets the markers first, then ``"\\n"`` and the text (``<video><image>\\nWhat ...``), as the
original's CLI, demo and evaluation scripts write it: videos first, then images, no separators.
Placeholder expansion (one id per visual token) is :func:`lvlm.data.tokenization.tokenize_prompt`'s.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from lvlm.data.collate import ProcessedSample
from lvlm.data.sample_errors import SampleTooLongError
from lvlm.data.templates import GPT, HUMAN
from lvlm.data.tokenization import IGNORE_INDEX, TokenizedSample, tokenize_conversation, tokenize_prompt
from lvlm.inference.session import InferenceSession
from lvlm.models.modality import Modality


def with_markers(question: str, modalities: Sequence[Modality]) -> str:
    """``question`` preceded by the marker (``modality.token``) of each media item, in marker order (``marker_rank``:
    videos first), and a newline, unless it places its markers itself.

    Args:
        question: the question text.
        modalities: the modality of each media item, in attachment order.
    """
    markers = [modality.token for modality in sorted(modalities, key=lambda modality: modality.marker_rank)]
    if not markers or any(marker in question for marker in set(markers)):
        return question
    return "".join(markers) + "\n" + question


def question_conversation(question: str, modalities: Sequence[Modality] = ()) -> list[dict[str, str]]:
    """A one-question conversation in LLaVA form, markers (one per media item's modality) placed as the original."""
    return [{"from": HUMAN, "value": with_markers(question, modalities)}]


@dataclass
class Conversation:
    """A multi-turn chat: media attach to the first user turn (as the original CLI does).

    Attributes:
        modalities: the modality of each attached media item, in attachment order.
        turns: LLaVA-form turns so far.
    """

    modalities: list[Modality] = field(default_factory=list)
    turns: list[dict[str, str]] = field(default_factory=list)

    def ask(self, question: str) -> list[dict[str, str]]:
        """The conversation with ``question`` appended as the next user turn (not stored until answered)."""
        text = with_markers(question, self.modalities) if not self.turns else question
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
    counts, by_name = _group_media(session, media)
    sample = tokenize_prompt(
        conversations,
        session.tokenizer,
        session.template,
        list(session.modalities.values()),
        session.num_frames,
        max_length if max_length is not None else session.max_length - 1,
        key=key,
        media_counts=counts,
    )
    return _with_media(session, sample, by_name, key, meta, labels=None)


def prepare_scoring_prompt(
    session: InferenceSession,
    conversations: list[dict[str, Any]],
    media: Sequence[tuple[str, torch.Tensor]] = (),
    *,
    key: str = "?",
    meta: dict[str, Any] | None = None,
) -> ProcessedSample:
    """Tokenize a conversation that ends with the answer to score; ``labels`` mark that answer's tokens only.

    The answer is tokenized exactly as in training (the template's own separator before it, e.g. ``" A"`` after
    ``ASSISTANT:``), and its end-of-turn EOS is not part of the scored span, so a score is the probability of
    the answer text, not of the answer followed by the end of the turn. Earlier answers are never scored.

    Args:
        session: the loaded checkpoint.
        conversations: LLaVA turns ending with the ``gpt`` turn to score.
        media, key, meta: as :func:`prepare_prompt`.

    Raises:
        BadSampleError: markers and media disagree, the JSON is malformed, or prompt and answer do not fit.
    """
    counts, by_name = _group_media(session, media)
    sample = tokenize_conversation(
        conversations,
        session.tokenizer,
        session.template,
        list(session.modalities.values()),
        session.num_frames,
        session.max_length + 1,
        key=key,
        media_counts=counts,
    )
    if len(sample) > session.max_length:
        raise SampleTooLongError(key, f"prompt and answer need more than the model's {session.max_length} positions")
    labels = _last_answer_only(sample, session.tokenizer.eos_token_id)
    return _with_media(session, sample, by_name, key, meta, labels=labels)


def _group_media(
    session: InferenceSession, media: Sequence[tuple[str, torch.Tensor]]
) -> tuple[dict[str, int], dict[str, list[torch.Tensor]]]:
    counts: dict[str, int] = {name: 0 for name in session.modalities}
    by_name: dict[str, list[torch.Tensor]] = {}
    for name, tensor in media:
        counts[name] = counts.get(name, 0) + 1
        by_name.setdefault(name, []).append(tensor)
    return counts, by_name


def _last_answer_only(sample: TokenizedSample, eos_id: int | None) -> torch.Tensor:
    """``[n]`` labels keeping the last supervised run (the final answer) without its end-of-turn EOS."""
    labels = sample.labels.clone()
    supervised = (labels != IGNORE_INDEX).nonzero().squeeze(-1).tolist()
    end = supervised[-1] + 1
    start = end - 1
    while start > 0 and labels[start - 1] != IGNORE_INDEX:
        start -= 1
    if eos_id is not None and end - start > 1 and int(labels[end - 1]) == eos_id:
        end -= 1
    kept = torch.full_like(labels, IGNORE_INDEX)
    kept[start:end] = labels[start:end]
    return kept


def _with_media(
    session: InferenceSession,
    sample: TokenizedSample,
    by_name: dict[str, list[torch.Tensor]],
    key: str,
    meta: dict[str, Any] | None,
    labels: torch.Tensor | None,
) -> ProcessedSample:
    """Pair each kept marker with its media tensor, in marker order."""
    by_token = {modality.token: modality for modality in session.modalities.values()}
    ordered, names = [], []
    for marker in sample.markers:
        modality = by_token[marker]
        ordered.append((modality.input_name, by_name[modality.name].pop(0)))
        names.append(modality.name)
    meta = dict(meta or {})
    if sample.reference is not None:
        meta.setdefault("reference", sample.reference)
    modality = "+".join(dict.fromkeys(names)) or "text"
    return ProcessedSample(
        key=key, input_ids=sample.input_ids, labels=labels, media=ordered, modality=modality, meta=meta
    )
