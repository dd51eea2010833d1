"""One prompt at a time with a static KV cache and, optionally, a compiled one-token decoding step.

A single answer needs none of a running batch's bookkeeping (rows joining and leaving, padding columns), so it
can decode with fixed shapes: transformers' ``StaticCache`` (its public cache API) holds the prompt and the
answer's room, rounded up to a bucket (:func:`bucket_size`: 128, 192, 256, 384, 512, ... positions, each a half
octave above the last, so past 128 positions a cache is more than two thirds full), and every step runs one token at its
position over the whole cache, the positions not yet written hidden by the causal mask. With ``compile=True`` that
step runs through ``torch.compile`` (inductor's default mode: "reduce-overhead" means CUDA graphs, which a CPU does
not have). Its shapes change only with the bucket, so a decoder compiles once per bucket it meets, and it keeps
one cache per bucket (reset between answers): transformers marks a static cache's tensors as fixed addresses, and
a new cache would compile again. Greedy tokens equal transformers' ``generate`` (``tests/inference``).

Legend: ``l`` prompt positions, ``v`` vocabulary.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from transformers import PreTrainedTokenizerBase, StaticCache

from lvlm.models.generation.answer import Answer
from lvlm.models.generation.decoding_batch import CONTEXT
from lvlm.models.generation.kv_cache import RowCache
from lvlm.models.generation.prompt_pass import prompt_pass
from lvlm.models.generation.sampler import choose_tokens, row_generator
from lvlm.models.video_llava import VideoLLaVA

SMALLEST_BUCKET = 128


def bucket_size(positions: int, max_length: int) -> int:
    """The static cache's size for ``positions``: the smallest of 128, 192, 256, 384, 512, 768, ... (powers of two
    and one and a half times them) that holds them, at most ``max_length``.

    Every step reads the whole cache, so its empty part costs time (at batch 1 a step reads the weights once and
    the cache once); every bucket met costs one compile. Half-octave steps keep a cache more than two thirds full
    (past 128 positions) and a 4,096-position model to 11 buckets."""
    size = SMALLEST_BUCKET
    while size < positions:
        size = size * 3 // 2 if size & (size - 1) == 0 else size * 4 // 3
    return min(size, max_length)


def one_token_logits(
    causal_lm: torch.nn.Module, token: torch.Tensor, position: torch.Tensor, cache: StaticCache
) -> torch.Tensor:
    """``[1, 1]`` token at ``[1]`` position → ``[1, v]`` next-token logits; writes its keys and values into
    ``cache``."""
    out = causal_lm(input_ids=token, position_ids=position[None], cache_position=position, cache=cache, use_cache=True)
    return out.logits[:, -1]


class StaticDecoder:
    """Decodes one prompt at a time with a static cache; keep one for a model to reuse its caches and graphs.

    Args:
        model: the model (eval mode).
        tokenizer: its tokenizer (end-of-sequence id, detokenization).
        max_length: the model's positions; an answer stops where its prompt and answer fill them.
        compile: run the decoding step through ``torch.compile`` (the first answer of each bucket pays the compile).
    """

    def __init__(
        self, model: VideoLLaVA, tokenizer: PreTrainedTokenizerBase, max_length: int, compile: bool = False
    ) -> None:
        self.model, self.tokenizer, self.max_length = model, tokenizer, max_length
        self.caches: dict[int, StaticCache] = {}
        self.step = torch.compile(one_token_logits, dynamic=False) if compile else one_token_logits

    @torch.inference_mode()
    def answer(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, media: Mapping[str, torch.Tensor], row: Answer
    ) -> None:
        """Generate ``row``'s answer to one prompt ``[1, l]`` (left padding is dropped)."""
        device = next(self.model.parameters()).device
        ids = input_ids[:, attention_mask[0].bool()].to(device)
        length = ids.shape[1]
        row.start(self.tokenizer, ids[0, -CONTEXT:].tolist(), self.max_length - length)
        logits, cache = self._prefill(ids, media, length + row.max_tokens)
        generator = row_generator(row.settings, device)
        for position in range(length, length + row.max_tokens):
            token = choose_tokens(logits, [row.settings], [generator], self.model.placeholder_ids)
            row.step(int(token[0]), self.tokenizer.eos_token_id)
            if row.finish_reason is not None:
                return
            here = torch.tensor([position], device=device)
            logits = self.step(self.model.llm.causal_lm, token[None].to(device), here, cache)

    def _prefill(
        self, ids: torch.Tensor, media: Mapping[str, torch.Tensor], room: int
    ) -> tuple[torch.Tensor, StaticCache]:
        """The prompt ``[1, l]`` run through the model: its last logits ``[1, v]`` and a static cache of ``room``
        positions holding it. The prompt attends over its own positions only (a cache of its length, copied once
        into the static one), not over the whole bucket."""
        device = ids.device
        prompt = RowCache(self.model.llm.config.num_hidden_layers)
        embeds = self.model.embed_inputs(ids, {k: v.to(device) for k, v in media.items()})
        out = prompt_pass(self.model.llm, embeds, cache=prompt, use_cache=True)
        cache = self._cache(room)
        written = {"cache_position": torch.arange(ids.shape[1], device=device)}
        for index, layer in enumerate(prompt.layers):
            cache.update(layer.keys, layer.values, index, written)
        return out.logits[:, -1], cache

    def _cache(self, positions: int) -> StaticCache:
        """This bucket's cache, emptied."""
        size = bucket_size(positions, self.max_length)
        if size not in self.caches:
            self.caches[size] = StaticCache(config=self.model.llm.config, max_cache_len=size)
        cache = self.caches[size]
        if cache.is_initialized:
            cache.reset()
        return cache
