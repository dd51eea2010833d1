"""Early fusion by placeholder tokens, as pure functions.

The text carries one placeholder id per visual token (like transformers' VideoLlava); projected
features are written into those positions in order with ``masked_scatter``. No per-sample loop, no
negative sentinel ids.

Legend: ``b`` batch, ``l`` sequence length, ``n`` items, ``k`` tokens per item, ``d`` width.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import torch

IGNORE_INDEX = -100


def merge_visual_embeddings(
    inputs_embeds: torch.Tensor,
    input_ids: torch.Tensor,
    features: torch.Tensor,
    placeholder_id: int,
    name: str = "visual",
) -> torch.Tensor:
    """Write ``features`` into the positions of ``placeholder_id``, row-major (batch, then position).

    Args:
        inputs_embeds: ``[b, l, d]`` token embeddings.
        input_ids: ``[b, l]`` ids, ``placeholder_id`` at every visual position.
        features: ``[n, k, d]`` projected features; item ``i`` fills the ``i``-th run of ``k`` placeholders.
        placeholder_id: the modality's token id.
        name: the modality, for the error message.

    Returns:
        ``[b, l, d]`` embeddings with the placeholders replaced (a new tensor).

    Raises:
        ValueError: the number of placeholders differs from the number of feature vectors.
    """
    mask = input_ids == placeholder_id
    n_placeholders = int(mask.sum())
    n_features = features.shape[0] * features.shape[1]
    if n_placeholders != n_features:
        raise ValueError(
            f"{name}: {n_placeholders} placeholder tokens (id {placeholder_id}) in input_ids but {n_features} feature "
            f"vectors ({features.shape[0]} items x {features.shape[1]} tokens). Each item needs exactly its tower's "
            f"token count of placeholders; check the tokenizer's expansion and the number of media per sample."
        )
    mask = mask.unsqueeze(-1).expand_as(inputs_embeds)
    return inputs_embeds.masked_scatter(mask, features.to(inputs_embeds.dtype))


def mask_visual_labels(labels: torch.Tensor, input_ids: torch.Tensor, placeholder_ids: Iterable[int]) -> torch.Tensor:
    """``[b, l]`` labels with ``IGNORE_INDEX`` at every visual position (a visual token is never a target)."""
    visual = torch.zeros_like(input_ids, dtype=torch.bool)
    for placeholder_id in placeholder_ids:
        visual |= input_ids == placeholder_id
    return labels.masked_fill(visual, IGNORE_INDEX)


def split_media(
    input_names: Sequence[str], images: torch.Tensor | None, videos: torch.Tensor | None, kwargs: dict[str, Any]
) -> dict[str, torch.Tensor]:
    """The media of a ``forward``/``generate`` call by input name: ``images``, ``videos`` and any added
    modality's tensor, taken out of ``kwargs`` (the rest goes to the LLM); absent ones left out."""
    media = {"images": images, "videos": videos}
    for name in input_names:
        if name in kwargs:
            media[name] = kwargs.pop(name)
    return {k: v for k, v in media.items() if v is not None}
