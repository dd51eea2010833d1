"""Answers to a batch of prompts at once: every row prefilled together, then stepped until the last is done."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import torch
from transformers import PreTrainedTokenizerBase

from lvlm.models.generation.answer import Answer
from lvlm.models.generation.decoding_batch import DecodingBatch
from lvlm.models.generation.settings import GenerationSettings
from lvlm.models.generation.static_decoding import StaticDecoder
from lvlm.models.video_llava import VideoLLaVA


def generate_answers(
    model: VideoLLaVA,
    tokenizer: PreTrainedTokenizerBase,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    media: Mapping[str, torch.Tensor],
    settings: GenerationSettings | Sequence[GenerationSettings],
    max_length: int,
    on_text: Callable[[str], None] | None = None,
    decoder: StaticDecoder | None = None,
) -> list[Answer]:
    """Finished answers to LEFT-padded prompts ``[b, l]``, in the same order.

    Args:
        model: the model (eval mode).
        tokenizer: its tokenizer.
        input_ids, attention_mask: ``[b, l]`` prompts, left-padded.
        media: the batch's stacked media by input name (``images``, ``videos``, ...).
        settings: one for every row, or one per row.
        max_length: the model's positions (answers stop where they run out).
        on_text: streams the text of a single prompt's answer as it grows.
        decoder: decodes a single prompt with its static cache (and compiled step) instead of a batch.
    """
    rows = input_ids.shape[0]
    per_row = [settings] * rows if isinstance(settings, GenerationSettings) else list(settings)
    if on_text is not None and rows != 1:
        raise ValueError(f"streaming answers one prompt at a time, got {rows}")
    answers = [Answer(s, on_text) for s in per_row]
    if decoder is not None and rows == 1:
        decoder.answer(input_ids, attention_mask, media, answers[0])
        return answers
    batch = DecodingBatch(model, tokenizer, max_length, max_rows=rows)
    batch.join(batch.prefill(input_ids, attention_mask, media), answers)
    while len(batch):
        batch.step()
    return answers
