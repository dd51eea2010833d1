"""Batched generation: left-pad prepared prompts, generate, cut each answer at its end-of-sequence, decode.

Greedy when ``temperature == 0``. The original evaluation called ``generate(do_sample=True, temperature=0.0)``,
which errors or divides by zero depending on the transformers version (spec §8.1): here sampling is only ever
switched on with a positive temperature.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from lvlm.data.collate import Collator, ProcessedSample
from lvlm.inference.session import InferenceSession


@dataclass(frozen=True)
class GenerationSettings:
    """How answers are generated.

    Attributes:
        max_new_tokens: longest answer in tokens (shortened when the model's positions run out).
        temperature: 0 for greedy decoding; above 0 samples with this temperature.
        top_p: nucleus sampling mass (sampling only).
        seed: seeds the sampler (each batch reseeds, so results do not depend on batch order across processes).
    """

    max_new_tokens: int = 128
    temperature: float = 0.0
    top_p: float = 1.0
    seed: int | None = None

    def __post_init__(self) -> None:
        if self.temperature < 0:
            raise ValueError(f"temperature must be >= 0 (0 = greedy), got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}")
        if self.max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be >= 1, got {self.max_new_tokens}")

    def generate_kwargs(self) -> dict[str, Any]:
        """Keyword arguments of ``VideoLLaVA.generate``: never ``do_sample=True`` with temperature 0."""
        if self.temperature == 0:
            return {"max_new_tokens": self.max_new_tokens, "do_sample": False}
        return {
            "max_new_tokens": self.max_new_tokens,
            "do_sample": True,
            "temperature": self.temperature,
            "top_p": self.top_p,
        }


def collate_for_generation(session: InferenceSession, samples: Sequence[ProcessedSample]) -> dict[str, Any]:
    """Left-padded ``input_ids``/``attention_mask`` ``[b, l]`` plus stacked media, on the model's device."""
    pad_id = session.tokenizer.pad_token_id
    if pad_id is None:
        pad_id = session.tokenizer.eos_token_id
    batch = Collator(pad_id, padding_side="left", modalities=list(session.modalities.values()))(samples)
    device = session.device
    return {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}


def generate_ids(
    session: InferenceSession, samples: Sequence[ProcessedSample], settings: GenerationSettings, **kwargs: Any
) -> list[list[int]]:
    """New token ids per sample, each cut before its first end-of-sequence token.

    Args:
        session: the loaded checkpoint.
        samples: prompts from :func:`lvlm.inference.prompts.prepare_prompt`.
        settings: decoding settings.
        **kwargs: passed to ``generate`` (``streamer=`` for token streaming).
    """
    batch = collate_for_generation(session, samples)
    tokenizer = session.tokenizer
    room = session.max_length - batch["input_ids"].shape[1]
    options = settings.generate_kwargs()
    options["max_new_tokens"] = max(1, min(options["max_new_tokens"], room))
    if settings.seed is not None:
        torch.manual_seed(settings.seed)
    names = [modality.input_name for modality in session.modalities.values()]
    media = {name: batch[name] for name in names if name in batch}
    new = session.model.generate(
        batch["input_ids"],
        attention_mask=batch["attention_mask"],
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id,
        **media,
        **options,
        **kwargs,
    )
    return [_until_eos(row.tolist(), tokenizer.eos_token_id) for row in new]


def _until_eos(ids: list[int], eos_id: int | None) -> list[int]:
    return ids[: ids.index(eos_id)] if eos_id is not None and eos_id in ids else ids


def decode_answer(session: InferenceSession, ids: list[int]) -> str:
    """Answer text: special tokens skipped, surrounding whitespace stripped."""
    return session.tokenizer.decode(ids, skip_special_tokens=True).strip()


def generate_batch(
    session: InferenceSession, samples: Sequence[ProcessedSample], settings: GenerationSettings, **kwargs: Any
) -> list[str]:
    """Answers to a batch of prepared prompts, in the same order."""
    return [decode_answer(session, ids) for ids in generate_ids(session, samples, settings, **kwargs)]
