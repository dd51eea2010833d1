"""Attention over packed rows that computes only each sample's causal block.

A packed row (:mod:`lvlm.data.packing`) holds several samples back to back, ``position_ids`` restarting at 0 at
every sample and no ``attention_mask``. transformers' ``sdpa`` reads the restarts and builds a dense
``[b, 1, l, l]`` block-diagonal mask, so a row pays attention over all ``l x l`` pairs (masked ones included)
however short its samples are. :data:`PACKED_SDPA` runs sdpa once per sample with ``is_causal`` instead:
``sum(n_i^2) / 2`` pairs, no mask built. Anything else (a padding mask, a KV cache holding past tokens, sliding
windows, a compiled graph) goes to transformers' sdpa unchanged, so padded batches and generation behave as
with ``sdpa``.

It is registered (an added key, nothing replaced) in transformers' ``AttentionInterface`` and
``AttentionMaskInterface``, the documented way to add an attention implementation; a model selects it with
``attn_implementation=PACKED_SDPA``. FlexAttention would do the same with a document mask, but it has no
backward on CPU in this torch; on a GPU with flash-attention installed, ``flash_attention_2`` runs varlen over
the same restarts.

Legend: ``b`` batch, ``h`` heads, ``l`` row length, ``e`` head width.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from transformers import AttentionInterface
from transformers.integrations.sdpa_attention import sdpa_attention_forward
from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

PACKED_SDPA = "lvlm_packed_sdpa"


def sample_starts(position_ids: torch.Tensor) -> torch.Tensor:
    """``[b, l]`` position ids → ``[b, l]`` True where a sample starts after the row's first: wherever the position
    does not step by +1, as in transformers' ``find_packed_sequence_indices``."""
    return torch.diff(position_ids, prepend=position_ids[:, :1] - 1, dim=-1) != 1


def sample_bounds(position_ids: torch.Tensor, rows: int) -> list[list[int]] | None:
    """Each row's sample edges ``[0, s_1, ..., l]`` from ``[b or 1, l]`` position ids; None when no row is packed."""
    starts = sample_starts(position_ids.expand(rows, -1))
    if not bool(starts.any()):
        return None
    length = position_ids.shape[1]
    return [[0, *row.nonzero().flatten().tolist(), length] for row in starts]


def is_packed(position_ids: torch.Tensor | None, attention_mask: torch.Tensor | None) -> bool:
    """Whether a batch is packed: position ids restarting inside a row and no attention mask."""
    return position_ids is not None and attention_mask is None and bool(sample_starts(position_ids).any())


def without_cache_if_packed(attention_mask: torch.Tensor | None, kwargs: dict[str, Any]) -> dict[str, Any]:
    """The LLM's keyword arguments with ``use_cache=False`` for a packed batch.

    transformers reads the samples of a packed row only when there is no cache; with one (``config.use_cache``
    makes one by default) the samples silently attend to each other under ``sdpa`` and ``eager``.

    Raises:
        ValueError: a packed batch with ``use_cache=True`` or a cache passed.
    """
    if not is_packed(kwargs.get("position_ids"), attention_mask):
        return kwargs
    if kwargs.get("use_cache") or kwargs.get("cache") is not None or kwargs.get("past_key_values") is not None:
        raise ValueError(
            "a packed batch (position_ids restarting inside a row, no attention_mask) cannot use a KV cache: "
            "its samples would attend to each other; pass use_cache=False and no cache"
        )
    return kwargs | {"use_cache": False}


def packed_sdpa_mask(
    *,
    q_length: int,
    kv_length: int,
    attention_mask: torch.Tensor | None = None,
    local_size: int | None = None,
    use_vmap: bool = False,
    config: Any = None,
    **kwargs: Any,
) -> torch.Tensor | None:
    """No mask for plain causal attention over the inputs alone (the attention function reads the samples from
    the position ids); transformers' ``sdpa_mask`` otherwise (padding, past tokens, sliding windows, custom
    mask functions, compiled graphs)."""
    plain_causal = (
        attention_mask is None
        and kv_length == q_length
        and local_size is None
        and not use_vmap
        and getattr(config, "is_causal", True)
        and not torch.compiler.is_compiling()
    )
    if plain_causal:
        return None
    return sdpa_mask(
        q_length=q_length,
        kv_length=kv_length,
        attention_mask=attention_mask,
        local_size=local_size,
        use_vmap=use_vmap,
        config=config,
        **kwargs,
    )


def packed_sdpa_attention_forward(
    module: nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    dropout: float = 0.0,
    scaling: float | None = None,
    position_ids: torch.Tensor | None = None,
    **kwargs: Any,
) -> tuple[torch.Tensor, None]:
    """``[b, h, l, e]`` queries, keys, values → ``[b, l, h, e]``: sdpa per sample of a packed row, transformers'
    sdpa for everything else."""
    causal = kwargs.get("is_causal")
    causal = getattr(module, "is_causal", True) if causal is None else causal
    plain_causal = attention_mask is None and causal and position_ids is not None and query.shape[2] == key.shape[2]
    # Without a mask the samples must be read here, compiled or not (a layer compiled on its own still gets no
    # mask; reading the bounds breaks its graph); a whole compiled model gets transformers' mask instead.
    bounds = None
    if plain_causal and query.shape[2] > 1:
        bounds = sample_bounds(position_ids, query.shape[0])
    if bounds is None:
        return sdpa_attention_forward(
            module, query, key, value, attention_mask, dropout, scaling, position_ids=position_ids, **kwargs
        )
    gqa = {"enable_gqa": True} if key.shape[1] != query.shape[1] else {}
    rows = []
    for row, edges in enumerate(bounds):
        # One split per tensor, not a slice per sample: a slice's backward fills a whole row of zeros.
        lengths = [end - start for start, end in zip(edges, edges[1:])]
        q, k, v = (t[row : row + 1].split(lengths, dim=2) for t in (query, key, value))
        parts = [
            F.scaled_dot_product_attention(*qkv, dropout_p=dropout, is_causal=True, scale=scaling, **gqa)
            for qkv in zip(q, k, v)
        ]
        rows.append(torch.cat([part.transpose(1, 2) for part in parts], dim=1))  # [1, l, h, e], one copy
    return torch.cat(rows), None


AttentionInterface.register(PACKED_SDPA, packed_sdpa_attention_forward)
AttentionMaskInterface.register(PACKED_SDPA, packed_sdpa_mask)
