"""Continuous batching: answers join a running batch after their own prefill and leave as soon as they are done.

A :class:`DecodingBatch` holds one :class:`~lvlm.models.generation.kv_cache.RowCache` for all its rows. New prompts
are prefilled together (left-padded, media fused by :meth:`VideoLLaVA.embed_inputs`) and their cache joins the
running one, right-aligned; every step then runs all rows at once, each at its own positions (from its attention
mask), so a row's tokens do not depend on its neighbours: greedy answers equal transformers' ``generate`` one by
one, and a seeded answer (its own generator) is the same alone or batched. Finished rows leave at once (the last
rows take their places) and columns of padding no row needs any more are cut from the left. A prefill
(:meth:`DecodingBatch.prefill`) reads nothing of the batch and may run on another thread while the batch steps.

Legend: ``b`` rows, ``l`` cached positions, ``v`` vocabulary.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from transformers import PreTrainedTokenizerBase

from lvlm.models.generation.answer import Answer
from lvlm.models.generation.kv_cache import RowCache, leaving_order
from lvlm.models.generation.prompt_pass import prompt_pass
from lvlm.models.generation.sampler import choose_tokens, row_generator
from lvlm.models.video_llava import VideoLLaVA

CONTEXT = 5  # prompt ids each answer's detokenizer starts from


@dataclass
class Prefill:
    """Prompts run through the model, ready to join: their cache, attention mask ``[b, l]`` (CPU), last logits
    ``[b, v]`` and the last prompt ids of each row."""

    cache: RowCache
    mask: torch.Tensor
    logits: torch.Tensor
    context: list[list[int]]


class DecodingBatch:
    """Answers decoding together, each with its own settings.

    Args:
        model: the model (eval mode).
        tokenizer: its tokenizer (end-of-sequence id, detokenization).
        max_length: the model's positions; an answer stops where its prompt and answer fill them.
        on_finish: called with a row's owner (given to :meth:`join` with it) as soon as the row is done.
        lock: held while detokenizing, when the tokenizer is shared with other threads.
        max_rows: rows the cache makes room for at once (more still fit; they cost a copy of the cache).
    """

    def __init__(
        self,
        model: VideoLLaVA,
        tokenizer: PreTrainedTokenizerBase,
        max_length: int,
        on_finish: Callable[[Any], None] = lambda owner: None,
        lock: threading.Lock | None = None,
        max_rows: int = 8,
    ) -> None:
        self.model, self.tokenizer, self.max_length = model, tokenizer, max_length
        self.on_finish, self.lock, self.max_rows = on_finish, lock, max_rows
        self.device = next(model.parameters()).device
        self.rows: list[Answer] = []
        self.owners: list[Any] = []  # who asked for each row, in row order
        self.generators: list[torch.Generator | None] = []
        self.cache: RowCache | None = None
        self.mask = torch.zeros(0, 0, dtype=torch.long)  # [b, l]
        self.last = torch.zeros(0, dtype=torch.long)  # [b] the token each row feeds next

    def __len__(self) -> int:
        return len(self.rows)

    @torch.inference_mode()
    def prefill(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, media: Mapping[str, torch.Tensor]
    ) -> Prefill:
        """Run left-padded prompts ``[b, l]`` through the towers and the LLM, apart from the running rows."""
        input_ids, mask = input_ids.to(self.device), attention_mask.to(self.device)
        if bool((mask[:, -1] == 0).any()):
            raise ValueError("prompts must be LEFT-padded: a prompt row ends in padding")
        embeds = self.model.embed_inputs(input_ids, {k: v.to(self.device) for k, v in media.items()})
        positions = (mask.cumsum(-1) - 1).masked_fill(mask == 0, 1)
        cache = RowCache(self.model.llm.config.num_hidden_layers)
        out = prompt_pass(
            self.model.llm, embeds, attention_mask=mask, position_ids=positions, cache=cache, use_cache=True
        )
        context = [row[m.bool()][-CONTEXT:].tolist() for row, m in zip(input_ids, mask, strict=True)]
        return Prefill(cache, mask.cpu(), out.logits[:, -1], context)

    @torch.inference_mode()  # the cache's buffers may be inference tensors (grown during a step): written in place
    def join(self, prefill: Prefill, rows: Sequence[Answer], owners: Sequence[Any] | None = None) -> None:
        """Merge prefilled rows into the batch and give each its first token (on the thread that steps)."""
        owners = list(owners) if owners is not None else list(rows)
        prompt_lengths = prefill.mask.sum(-1).tolist()
        for row, context, length in zip(rows, prefill.context, prompt_lengths, strict=True):
            row.start(self.tokenizer, context, self.max_length - int(length))
        self._merge(prefill.cache, prefill.mask)
        first = len(self.rows)
        self.rows += rows
        self.owners += owners
        self.generators += [row_generator(row.settings, self.device) for row in rows]
        settings = [row.settings for row in rows]
        tokens = choose_tokens(prefill.logits, settings, self.generators[first:], self.model.placeholder_ids)
        self.last = torch.cat([self.last[:first], tokens])
        self._take(range(first, len(self.rows)))

    def abandon(self) -> None:
        """Forget every row (a failure left the cache in doubt); the next rows to join start a new cache."""
        self.rows, self.owners, self.generators = [], [], []
        self.cache, self.mask, self.last = None, self.mask[:0, :0], self.last[:0]

    @torch.inference_mode()
    def step(self) -> None:
        """One decoding step for every row."""
        self.mask = torch.cat([self.mask, torch.ones_like(self.mask[:, :1])], dim=1)
        positions = self.mask.sum(-1, keepdim=True) - 1
        out = self.model.llm(
            inputs_embeds=self.model.llm.embed_tokens(self.last[:, None].to(self.device)),
            attention_mask=self.mask.to(self.device),
            position_ids=positions.to(self.device),
            cache=self.cache,  # extended in place
            use_cache=True,
        )
        settings = [row.settings for row in self.rows]
        self.last = choose_tokens(out.logits[:, -1], settings, self.generators, self.model.placeholder_ids)
        self._take(range(len(self.rows)))

    def _take(self, indices: range) -> None:
        """Feed rows their tokens, let finished rows leave, trim padding columns no row uses."""
        for i in indices:
            self.rows[i].step(int(self.last[i]), self.tokenizer.eos_token_id, self.lock)
        leaving = [i for i, row in enumerate(self.rows) if row.finish_reason is not None]
        for i in leaving:
            self.on_finish(self.owners[i])
        if leaving:
            order = leaving_order(len(self.rows), leaving)
            self.rows = [self.rows[i] for i in order]
            self.owners = [self.owners[i] for i in order]
            self.generators = [self.generators[i] for i in order]
            index = torch.tensor(order, dtype=torch.long)
            self.mask, self.last = self.mask[index], self.last[index]
            self.cache.keep_rows(order)
        used = self.mask.any(dim=0).nonzero()
        start = int(used[0]) if len(used) else self.mask.shape[1]
        if start:
            self.mask = self.mask[:, start:]
            self.cache.trim_left(start)

    def _merge(self, cache: RowCache, mask: torch.Tensor) -> None:
        if self.cache is None or not self.rows:
            self.cache, self.mask, self.last = cache, mask, self.last[:0]
            for layer in cache.layers:  # room for the rows that will join (one copy, as the first step would make)
                layer.reserve(self.max_rows, left=0, right=1)
                layer.window()
            return
        length = max(self.mask.shape[1], mask.shape[1])
        self.mask = torch.cat([_pad_left(self.mask, length), _pad_left(mask, length)])
        self.cache.join(cache, self.max_rows)


def _pad_left(mask: torch.Tensor, length: int) -> torch.Tensor:
    """``[b, l]`` → ``[b, length]``, zeros in front."""
    return torch.cat([mask.new_zeros(mask.shape[0], length - mask.shape[1]), mask], dim=1)
