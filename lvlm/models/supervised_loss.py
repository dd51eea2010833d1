"""The causal LM loss computed only where it is defined: the LM head runs at positions that predict a target.

In a Video-LLaVA batch most positions are visual tokens, which are never targets; the LM head's logits there
(``[b, l, v]`` in float32 for the loss: about 4 GB for 16 samples of 2,000-token videos, 32k vocabulary)
are computed, kept for backward and thrown away. Keeping only the positions that predict a supervised token
in some row gives the same loss, the mean cross-entropy over supervised tokens, for a fraction of the memory.

The loss is taken over the vocabulary *without* the rows appended for placeholders (``<image>``, ``<video>``,
any modality's): they are never targets and the original model had no such rows, so giving them probability
mass would change the loss (``excluded_ids``). transformers' VideoLlava includes them; pass no ``excluded_ids``
for that loss.

Legend: ``b`` batch, ``l`` sequence length, ``n`` kept positions, ``v`` vocabulary.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from lvlm.models.chunked_loss import CHUNK_TOKENS, chunked_cross_entropy
from lvlm.models.fusion import IGNORE_INDEX


def supervised_positions(labels: torch.Tensor) -> torch.Tensor:
    """``[n]`` positions ``p`` whose next token ``labels[:, p + 1]`` is a target in at least one row, ascending."""
    predicts_target = (labels[:, 1:] != IGNORE_INDEX).any(dim=0)
    return predicts_target.nonzero().squeeze(-1)


def loss_at_positions(
    logits: torch.Tensor,
    labels: torch.Tensor,
    positions: torch.Tensor,
    excluded_ids: Sequence[int] = (),
    chunk_tokens: int = CHUNK_TOKENS,
) -> torch.Tensor:
    """Mean cross-entropy of ``[b, n, v]`` logits taken at ``positions`` against the ``[b, l]`` labels they predict.

    Equals the shifted causal LM loss over the whole sequence (transformers' ``ForCausalLMLoss`` without
    ``num_items_in_batch``): every supervised token is predicted from a kept position. The vocabulary rows
    ``excluded_ids`` get no probability: the softmax runs over the other rows only. Computed in chunks of
    ``chunk_tokens`` rows with the gradient taken in forward (:mod:`lvlm.models.chunked_loss`): no float32 copy of
    all the logits is kept; the chunks' sums add up in another order than one ``cross_entropy`` call's.
    """
    targets = labels[:, positions + 1].flatten()
    return chunked_cross_entropy(logits.flatten(0, 1), targets, list(excluded_ids), chunk_tokens)


def causal_loss(logits: torch.Tensor, labels: torch.Tensor, excluded_ids: Sequence[int] = ()) -> torch.Tensor:
    """The shifted causal LM loss of ``[b, l, v]`` logits against ``[b, l]`` labels, without ``excluded_ids``."""
    positions = torch.arange(logits.shape[1] - 1, device=logits.device)
    return loss_at_positions(logits[:, :-1], labels, positions, excluded_ids)


def run_language_model(
    llm: Any,
    embeds: torch.Tensor,
    attention_mask: torch.Tensor | None,
    labels: torch.Tensor | None,
    excluded: Sequence[int],
    loss_only: bool,
    full_vocabulary_loss: bool,
    **kwargs: Any,
) -> Any:
    """Run the LLM on ``[b, l, d]`` embeddings and take the loss the way ``VideoLLaVA.forward`` was asked to.

    With ``labels`` and ``loss_only`` (and an LLM that keeps logits by index), the LM head runs at the supervised
    positions only; with ``full_vocabulary_loss`` (or the caller's ``logits_to_keep``), transformers takes the loss
    itself over every row; otherwise the loss leaves out the ``excluded`` vocabulary rows (the placeholders).
    """
    if labels is not None and loss_only and "logits_to_keep" not in kwargs and llm.keeps_logits_by_index:
        positions = supervised_positions(labels)
        output = llm(inputs_embeds=embeds, attention_mask=attention_mask, logits_to_keep=positions, **kwargs)
        output.loss = loss_at_positions(output.logits, labels, positions, excluded)
        return output
    if labels is None or full_vocabulary_loss or "logits_to_keep" in kwargs:
        return llm(inputs_embeds=embeds, attention_mask=attention_mask, labels=labels, **kwargs)
    output = llm(inputs_embeds=embeds, attention_mask=attention_mask, **kwargs)
    output.loss = causal_loss(output.logits, labels, excluded)
    return output
