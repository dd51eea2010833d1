"""A right-padded training batch run without its padding: the rows' real tokens back to back in one packed row.

In a padded batch every row pays the longest row's length: in the LLM's linear layers (``b x l`` positions) and in
attention (``b x l^2`` pairs). A Video-LLaVA batch mixing a 2,000-token video sample with a 300-token image sample
spends most of the image row on padding. Laid out as one packed row (:mod:`lvlm.data.packing`'s layout: position
ids restarting at 0 per sample, no attention mask), the LLM computes only the real tokens, and an attention that
runs per sample (:data:`~lvlm.models.packed_attention.PACKED_SDPA`, flash-attention's varlen) only each sample's
causal block. The loss is the same mean over the same supervised tokens; only the order of some sums changes.

This is the padding-free layout of transformers' ``DataCollatorWithFlattening``, done inside the forward after the
visual features are merged (the towers still see whole batches of frames).

Legend: ``b`` batch, ``l`` padded length, ``N`` real tokens in the batch, ``d`` width.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import torch

from lvlm.models.fusion import IGNORE_INDEX
from lvlm.models.packed_attention import PACKED_SDPA

# Attentions that compute each sample of a packed row on its own; transformers' sdpa and eager would build a dense
# ``[1, 1, N, N]`` block-diagonal mask instead, which can cost more than the padding it saves.
PER_SAMPLE_ATTENTION = frozenset({PACKED_SDPA, "flash_attention_2", "flash_attention_3"})


class PackedRow(NamedTuple):
    """One packed row: ``embeds [1, N, d]``, ``labels [1, N]`` (-100 at every sample's first token: it is predicted
    from the previous sample's last token), ``position_ids [1, N]``."""

    embeds: torch.Tensor
    labels: torch.Tensor
    position_ids: torch.Tensor


def can_drop_padding(
    attention_mask: torch.Tensor | None, labels: torch.Tensor, kwargs: dict[str, Any], attn_implementation: str
) -> bool:
    """Whether the padded batch can run as one packed row with the same loss.

    It can when the LLM attends per sample, some row is right-padded (``attention_mask`` a prefix of ones in every
    row), no target sits on a padded position, and the caller passes neither ``position_ids`` nor a KV cache.
    """
    if attention_mask is None or attention_mask.dim() != 2 or attn_implementation not in PER_SAMPLE_ATTENTION:
        return False
    if kwargs.get("use_cache") or any(kwargs.get(k) is not None for k in ("position_ids", "past_key_values", "cache")):
        return False
    mask = attention_mask.bool()
    lengths = mask.sum(dim=1, keepdim=True)
    prefix = torch.arange(mask.shape[1], device=mask.device) < lengths
    padded = bool((lengths < mask.shape[1]).any())
    return padded and bool((mask == prefix).all()) and bool((labels[~mask] == IGNORE_INDEX).all())


def pack_padded_rows(embeds: torch.Tensor, attention_mask: torch.Tensor, labels: torch.Tensor) -> PackedRow:
    """``[b, l, d]`` embeddings and ``[b, l]`` labels of right-padded rows → their real tokens as one packed row."""
    mask = attention_mask.bool()
    labels = labels.clone()
    labels[:, 0] = IGNORE_INDEX  # never a target in the padded batch either (nothing predicts it)
    positions = torch.arange(mask.shape[1], device=mask.device).expand_as(mask)
    return PackedRow(embeds[mask][None], labels[mask][None], positions[mask][None])
