"""Generation for prepared prompts: collate them left-padded, then run the engine (:mod:`lvlm.models.generation`).

Batch-of-N for ``lvlm predict`` and ``lvlm eval --model``; batch-1 with streaming for ``lvlm chat``; ``lvlm serve``
keeps a :class:`~lvlm.models.generation.decoding_batch.DecodingBatch` running (:mod:`.batch_scheduler`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch

from lvlm.data.collate import Collator, ProcessedSample
from lvlm.inference.session import InferenceSession
from lvlm.models.generation.answer import Answer
from lvlm.models.generation.generate import generate_answers
from lvlm.models.generation.settings import GenerationSettings
from lvlm.models.generation.static_decoding import StaticDecoder

__all__ = ["GenerationSettings", "collate_for_generation", "generate", "generate_batch", "generate_ids"]


def collate_for_generation(session: InferenceSession, samples: Sequence[ProcessedSample]) -> dict[str, Any]:
    """Left-padded ``input_ids``/``attention_mask`` ``[b, l]`` plus stacked media, on the model's device."""
    pad_id = session.tokenizer.pad_token_id
    if pad_id is None:
        pad_id = session.tokenizer.eos_token_id
    batch = Collator(pad_id, padding_side="left", modalities=list(session.modalities.values()))(samples)
    device = session.device
    return {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}


def media_inputs(session: InferenceSession, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
    """The batch's stacked media by the model's input names (``images``, ``videos``, ...)."""
    names = [modality.input_name for modality in session.modalities.values()]
    return {name: batch[name] for name in names if batch.get(name) is not None}


def generate(
    session: InferenceSession,
    samples: Sequence[ProcessedSample],
    settings: GenerationSettings | Sequence[GenerationSettings],
    on_text: Callable[[str], None] | None = None,
    decoder: StaticDecoder | None = None,
) -> list[Answer]:
    """Finished answers (ids, text, finish reason) to prepared prompts, in the same order.

    Args:
        session: the loaded checkpoint.
        samples: prompts from :func:`lvlm.inference.prompts.prepare_prompt`.
        settings: decoding settings, one for all or one per prompt.
        on_text: streams the answer's text as it grows (one prompt only).
        decoder: answers a single prompt with its static cache and compiled step (keep one per session).
    """
    batch = collate_for_generation(session, samples)
    return generate_answers(
        session.model, session.tokenizer, batch["input_ids"], batch["attention_mask"], media_inputs(session, batch),
        settings, session.max_length, on_text, decoder,
    )  # fmt: skip


def generate_ids(
    session: InferenceSession, samples: Sequence[ProcessedSample], settings: GenerationSettings
) -> list[list[int]]:
    """New token ids per prompt, each ended before its end-of-sequence token (or its stop string's token)."""
    return [answer.ids for answer in generate(session, samples, settings)]


def generate_batch(
    session: InferenceSession, samples: Sequence[ProcessedSample], settings: GenerationSettings
) -> list[str]:
    """Answers to a batch of prepared prompts, in the same order (stop strings cut, whitespace stripped)."""
    return [answer.text for answer in generate(session, samples, settings)]
