"""Batched prediction: questions → prediction records ``{"key", "question", "answer", "prediction", ...meta}``.

Every record is built from its own :class:`~lvlm.inference.questions.Question`, so a prediction can never be
paired with another question's reference (the original's multi-GPU evaluation indexed the answers of each
chunk from zero). A question that cannot be asked (missing or undecodable media, markers that do
not match the media, a prompt too long) is skipped and reported with its key and reason; nothing replaces it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from lvlm.data.collate import ProcessedSample
from lvlm.data.decoding.errors import MediaDecodeError
from lvlm.inference.batch_generate import GenerationSettings, generate_batch
from lvlm.inference.media_files import load_media
from lvlm.inference.prompts import prepare_prompt
from lvlm.inference.questions import Question, questions_from_records
from lvlm.inference.session import InferenceSession, load_session

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SkippedQuestion:
    """A question that was not answered: where it was read, its key, a reason code and what went wrong."""

    index: int
    key: str
    reason: str
    detail: str
    source: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class PredictionResult:
    """Prediction records (input order), the input index of each, and the skipped questions."""

    predictions: list[dict[str, Any]] = field(default_factory=list)
    skipped: list[SkippedQuestion] = field(default_factory=list)
    indices: list[int] = field(default_factory=list)


BatchSink = Callable[[PredictionResult], None]
"""Receives what each batch added (records, their indices, skipped questions): the incremental writer."""


def _reason(err: Exception) -> str:
    if isinstance(err, MediaDecodeError):
        return "undecodable_media"
    return getattr(err, "reason", type(err).__name__)


def skipped_question(question: Question, err: Exception) -> SkippedQuestion:
    """The report entry of a question that cannot be answered."""
    return SkippedQuestion(question.index, question.key, _reason(err), str(err), question.source)


def prepare_question(session: InferenceSession, question: Question) -> ProcessedSample:
    """Load the question's media and tokenize its prompt (raises the errors :func:`predict` reports)."""
    if question.error is not None:
        raise question.error
    media = [(modality, load_media(session, modality, source, key=question.key)) for modality, source in question.media]
    return prepare_prompt(session, question.conversations, media, key=question.key)


def prediction_record(question: Question, prediction: str) -> dict[str, Any]:
    """The output line of one question: its own key, question and reference, the prediction, then metadata."""
    return {
        "key": question.key,
        "question": question.question,
        "answer": question.answer,
        "prediction": prediction,
        **{k: v for k, v in question.meta.items() if k not in ("prediction",)},
    }


def predict(
    session: InferenceSession,
    questions: Iterable[Question],
    settings: GenerationSettings | None = None,
    batch_size: int = 8,
    on_batch: Callable[[int, int], None] | None = None,
    sink: BatchSink | None = None,
) -> PredictionResult:
    """Answer questions in batches of ``batch_size`` (left-padded, one ``generate`` call per batch).

    A question that cannot be prepared (its record, its media or its prompt is unusable) is skipped and
    reported; one bad question never stops the others.

    Args:
        session: the loaded checkpoint.
        questions: the questions, e.g. from :func:`~lvlm.inference.question_files.questions_from_file`.
        settings: decoding settings (greedy, 128 new tokens by default).
        batch_size: prompts per ``generate`` call.
        on_batch: called with the (answered, skipped) counts so far after each batch (progress display).
        sink: called after each batch with what it added, before ``on_batch`` (``lvlm predict`` appends it
            to its partial output, so an interrupted run can resume).

    Returns:
        Records in input order and the skipped questions with their reasons.
    """
    settings = settings or GenerationSettings()
    result, new = PredictionResult(), PredictionResult()
    pending: list[tuple[Question, ProcessedSample]] = []

    def flush() -> None:
        answers = generate_batch(session, [sample for _, sample in pending], settings) if pending else []
        for (question, _), answer in zip(pending, answers):
            new.predictions.append(prediction_record(question, answer))
            new.indices.append(question.index)
        pending.clear()
        result.predictions += new.predictions
        result.indices += new.indices
        result.skipped += new.skipped
        if sink is not None:
            sink(new)
        if on_batch is not None:
            on_batch(len(result.predictions), len(result.skipped))
        new.predictions, new.indices, new.skipped = [], [], []

    for question in questions:
        try:
            pending.append((question, prepare_question(session, question)))
        except Exception as err:  # noqa: BLE001 - one bad question never stops the job; it is reported
            skipped = skipped_question(question, err)
            log.info("skipped %s (%s): %s", skipped.key, skipped.reason, skipped.detail)
            new.skipped.append(skipped)
        if len(pending) >= batch_size:
            flush()
    flush()
    return result


def predict_records(
    model_dir: str | Path | InferenceSession,
    records: Iterable[Mapping[str, Any]],
    *,
    media_root: str | Path | None = None,
    batch_size: int = 8,
    max_new_tokens: int = 128,
    temperature: float = 0.0,
    top_p: float = 1.0,
    template: str | None = None,
    skipped: list[SkippedQuestion] | None = None,
) -> list[dict[str, Any]]:
    """Generate a prediction for every record (the hook ``lvlm eval --model`` calls before scoring).

    Args:
        model_dir: a checkpoint directory, or an already loaded :class:`InferenceSession`.
        records: question objects in the JSON-list format of :mod:`lvlm.inference.questions`.
        media_root: folder that relative media paths start from.
        batch_size, max_new_tokens, temperature, top_p: as ``lvlm predict``.
        template: overrides the checkpoint's chat template.
        skipped: if given, receives the questions that could not be answered.

    Returns:
        Prediction records ``{"key", "question", "answer", "prediction", ...metadata}`` in input order.
    """
    session = model_dir if isinstance(model_dir, InferenceSession) else load_session(model_dir, template)
    settings = GenerationSettings(max_new_tokens=max_new_tokens, temperature=temperature, top_p=top_p)
    result = predict(
        session, list(questions_from_records(records, media_root, modalities=session.modalities)), settings, batch_size
    )
    if skipped is not None:
        skipped.extend(result.skipped)
    return result.predictions


def answer(
    session: InferenceSession,
    question: str,
    media: Iterable[str | Path | tuple[str, str | Path]] = (),
    settings: GenerationSettings | None = None,
) -> str:
    """Answer one question about zero or more media files (markers placed as the original does).

    A file is a path (its modality found from its extension) or ``(modality, path)`` (``("depth", "d.png")``).
    """
    from lvlm.inference.media_files import check_media_file

    sources = [item if isinstance(item, tuple) else (check_media_file(item), str(item)) for item in media]
    record: dict[str, Any] = {"key": "question", "question": question}
    for modality, path in sources:
        record.setdefault(modality, []).append(str(path))
    result = predict(session, questions_from_records([record], modalities=session.modalities), settings, batch_size=1)
    if result.skipped:
        raise ValueError(result.skipped[0].detail)
    return result.predictions[0]["prediction"]
