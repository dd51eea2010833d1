"""A prompt's pass through the LLM that skips work nobody reads: the last decoder layer's attention output
projection and feed-forward run on the last position alone.

Generation reads two things from a prompt pass: every layer's keys and values (the KV cache, computed from the
layer's input, before its attention) and the next-token logits of the last position. The last layer's output
reaches nothing but those logits, so its per-position tail (the attention's output projection, then the
feed-forward) is needed at the last position only. :func:`prompt_pass` cuts their input to ``[b, 1, d]`` while
the prompt runs; the layer's residual sums broadcast the result over the row, so the last position's hidden state
is what the whole row would give and every other position's final hidden state is meaningless (nothing reads it:
the pass keeps one position's logits). Prompts are left-padded, so every row's last position is the last column.

What it saves: about three quarters of one layer (a Llama layer's feed-forward and output projection are
``(3 f + d) / (3 f + 4 d)`` of its matrix products), i.e. 1/L of the prompt pass of an L-layer LLM (12 % at 6
layers, 2.4 % at 32). A one-position input (a decoding step) is not changed, so a step on another thread while a
prompt runs is unaffected. A layer without ``mlp`` (or ``self_attn.o_proj``) runs whole for that part.

Legend: ``b`` rows, ``l`` prompt positions, ``d`` width, ``f`` feed-forward width.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn

from lvlm.models.language_model import LanguageModel


def _last_position(module: nn.Module, args: tuple[Any, ...]) -> tuple[Any, ...] | None:
    """Forward pre-hook: the first input ``[b, l, ...]`` cut to ``[b, 1, ...]``."""
    if args and isinstance(args[0], torch.Tensor) and args[0].dim() == 3:
        return (args[0][:, -1:], *args[1:])
    return None


def last_layer_tail(llm: LanguageModel) -> list[nn.Module]:
    """The last decoder layer's modules that only need the last position in a prompt pass."""
    layer = llm.decoder_layers[-1]
    attention = getattr(layer, "self_attn", None)
    found = [getattr(attention, "o_proj", None), getattr(layer, "mlp", None)]
    return [module for module in found if isinstance(module, nn.Module)]


@contextmanager
def last_position_tail(llm: LanguageModel) -> Iterator[None]:
    """While inside, the last layer's output projection and feed-forward see the last position only."""
    handles = [module.register_forward_pre_hook(_last_position) for module in last_layer_tail(llm)]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


def prompt_pass(llm: LanguageModel, inputs_embeds: torch.Tensor, **kwargs: Any) -> Any:
    """Run left-padded prompt embeddings ``[b, l, d]`` through ``llm`` (``cache``, masks and positions in
    ``kwargs``); returns its output with the last position's logits only (``.logits`` ``[b, 1, v]``)."""
    with last_position_tail(llm):
        return llm(inputs_embeds=inputs_embeds, logits_to_keep=1, **kwargs)
