"""Continuous batching: rows join a running batch after their own prefill and leave as soon as they are done.

A :class:`RunningBatch` holds one KV cache for all its rows. New prompts are prefilled together (left-padded,
visual features fused by :meth:`VideoLLaVA.embed_inputs`) and their cache is merged into the running one, padded
on the left to a common length; every decoding step then runs all rows at once, each at its own positions
(from its attention mask), so a row's tokens do not depend on its neighbours: greedy answers equal
``generate`` one by one. Finished rows leave the cache at once (the last rows take their places, so the batch's
row order changes), and columns of padding no row needs any more are cut from its left. The cache
(:mod:`lvlm.inference.growing_cache`) has room for more rows and positions, so none of this copies the rows that
stay. A prefill (:meth:`RunningBatch.prefill`) reads nothing of the batch and may run on another thread while
the batch steps; its rows join with :meth:`RunningBatch.join`.

Legend: ``b`` rows, ``l`` cached positions, ``h`` KV heads, ``d`` head width, ``v`` vocabulary.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from transformers import DynamicCache, LogitsProcessorList, TemperatureLogitsWarper, TopPLogitsWarper

from lvlm.data.collate import ProcessedSample
from lvlm.inference.answer_rows import AnswerRow
from lvlm.inference.batch_generate import GenerationSettings, collate_for_generation
from lvlm.inference.growing_cache import growing_cache, join_right_aligned, keep_rows, leaving_order, trim_left
from lvlm.inference.session import InferenceSession


@dataclass
class Prefill:
    """Prompts run through the model, ready to join a batch: their cache, attention mask ``[b, l]`` and first tokens
    ``[b]``."""

    cache: DynamicCache
    mask: torch.Tensor
    tokens: torch.Tensor


class RunningBatch:
    """Rows decoding together; all rows share one temperature and top-p (greedy at temperature 0).

    Args:
        session: the loaded checkpoint.
        settings: the decoding settings of the batch's group (``max_new_tokens`` is per row, not used here).
        lock: the tokenizer lock rows decode under.
        on_finish: called with a row's owner (what :meth:`admit` was given with it) as soon as the row is done.
        max_rows: rows the cache makes room for at once (more still fit; they cost a copy of the cache).
    """

    def __init__(
        self,
        session: InferenceSession,
        settings: GenerationSettings,
        lock: threading.Lock,
        on_finish: Callable[[Any], None],
        max_rows: int = 8,
    ) -> None:
        self.session = session
        self.max_rows = max_rows
        self.model = session.model
        self.lock = lock
        self.on_finish = on_finish
        self.rows: list[AnswerRow] = []
        self.owners: list[Any] = []  # who asked for each row (a queued request), in row order
        self.cache: DynamicCache | None = None
        self.mask = torch.zeros(0, 0, dtype=torch.long)  # [b, l]
        self.last = torch.zeros(0, dtype=torch.long)  # [b] the token each row feeds next
        self.warpers = LogitsProcessorList()
        if settings.temperature > 0:
            self.warpers.append(TemperatureLogitsWarper(settings.temperature))
            if settings.top_p < 1:
                self.warpers.append(TopPLogitsWarper(settings.top_p))

    def __len__(self) -> int:
        return len(self.rows)

    def admit(self, samples: Sequence[ProcessedSample], rows: Sequence[AnswerRow], owners: Sequence[Any]) -> None:
        """Prefill new prompts, merge their cache in, and give each its first token."""
        self.join(self.prefill(samples), rows, owners)

    @torch.inference_mode()
    def prefill(self, samples: Sequence[ProcessedSample]) -> Prefill:
        """Run new prompts through the towers and the LLM, apart from the running rows.

        It reads no state of the batch, so it may run on another thread while :meth:`step` goes on; its rows
        join with :meth:`join`.
        """
        batch = collate_for_generation(self.session, samples)
        mask = batch["attention_mask"]
        names = [m.input_name for m in self.session.modalities.values()]
        media = {name: batch[name] for name in names if name in batch}
        embeds = self.model.embed_inputs(batch["input_ids"], media)
        positions = (mask.cumsum(-1) - 1).masked_fill(mask == 0, 1)
        cache = growing_cache(self.model.llm.config)
        out = self.model.llm(
            inputs_embeds=embeds,
            attention_mask=mask,
            position_ids=positions,
            cache=cache,  # filled in place
            use_cache=True,
            logits_to_keep=1,
        )
        return Prefill(cache, mask.cpu(), self._choose(out.logits[:, -1]))

    def join(self, prefill: Prefill, rows: Sequence[AnswerRow], owners: Sequence[Any]) -> None:
        """Merge prefilled rows into the batch and give each its first token (on the thread that steps)."""
        self._merge(prefill.cache, prefill.mask)
        self.rows += rows
        self.owners += owners
        self._take(prefill.tokens, range(len(self.rows) - len(rows), len(self.rows)))

    def abandon(self) -> None:
        """Forget every row (a failure left the cache in doubt); the next rows to join start a new cache."""
        self.rows, self.owners = [], []
        self.cache, self.mask, self.last = None, self.mask[:0, :0], self.last[:0]

    @torch.inference_mode()
    def step(self) -> None:
        """One decoding step for every row."""
        self.mask = torch.cat([self.mask, torch.ones_like(self.mask[:, :1])], dim=1)
        positions = self.mask.sum(-1, keepdim=True) - 1
        out = self.model.llm(
            inputs_embeds=self.model.llm.embed_tokens(self.last[:, None].to(self.session.device)),
            attention_mask=self.mask.to(self.session.device),
            position_ids=positions.to(self.session.device),
            cache=self.cache,  # extended in place
            use_cache=True,
        )
        tokens = self._choose(out.logits[:, -1])
        self._take(tokens, range(len(self.rows)))

    def _choose(self, logits: torch.Tensor) -> torch.Tensor:
        """``[b, v]`` logits → ``[b]`` tokens; placeholder tokens are never generated (as in ``generate``)."""
        logits = logits.float()
        logits[:, self.model.placeholder_ids] = -float("inf")
        if not self.warpers:
            return logits.argmax(-1).cpu()
        probs = torch.softmax(self.warpers(None, logits), dim=-1)
        return torch.multinomial(probs, 1)[:, 0].cpu()

    def _take(self, tokens: torch.Tensor, indices: range) -> None:
        """Feed rows their tokens, drop finished rows, trim padding columns no row uses."""
        self.last = torch.cat([self.last[: indices.start], tokens[-len(indices) :]]) if indices.start else tokens
        tokenizer = self.session.tokenizer
        for i in indices:
            self.rows[i].step(int(self.last[i]), tokenizer, self.lock)
        keep = [i for i, row in enumerate(self.rows) if row.finish_reason is None]
        for row, owner in zip(self.rows, self.owners, strict=True):
            if row.finish_reason is not None:
                self.on_finish(owner)
        if len(keep) < len(self.rows):
            # The last rows take the places of those that leave: only they move in the cache.
            order = leaving_order(
                len(self.rows), [i for i, row in enumerate(self.rows) if row.finish_reason is not None]
            )
            index = torch.tensor(order, dtype=torch.long)
            self.rows = [self.rows[i] for i in order]
            self.owners = [self.owners[i] for i in order]
            self.mask, self.last = self.mask[index], self.last[index]
            if self.cache is not None:
                keep_rows(self.cache, order)
        self._trim()

    def _trim(self) -> None:
        used = self.mask.any(dim=0).nonzero()
        start = int(used[0]) if len(used) else self.mask.shape[1]
        if start == 0 or self.cache is None:
            return
        self.mask = self.mask[:, start:]
        trim_left(self.cache, start)

    def _merge(self, cache: DynamicCache, mask: torch.Tensor) -> None:
        if self.cache is None or not self.rows:
            self.cache, self.mask, self.last = cache, mask, self.last[:0]
            for layer in cache.layers:  # room for the rows that will join (one copy, as the first step would make)
                layer.reserve(self.max_rows, left=0, right=1)
            return
        length = max(self.mask.shape[1], mask.shape[1])
        self.mask = torch.cat([_pad_left(self.mask, length), _pad_left(mask, length)])
        join_right_aligned(self.cache, cache, self.max_rows)


def _pad_left(tensor: torch.Tensor, length: int, dim: int = 1) -> torch.Tensor:
    """Zeros in front along ``dim`` up to ``length``."""
    missing = length - tensor.shape[dim]
    if missing == 0:
        return tensor
    shape = list(tensor.shape)
    shape[dim] = missing
    return torch.cat([tensor.new_zeros(shape), tensor], dim=dim)
