"""transformers' ``generate`` on a :class:`~lvlm.models.video_llava.VideoLLaVA`: visual features fused once into the
prompt's embeddings, then the LLM's own ``generate`` with the KV cache. No application decodes with it (they use
:mod:`lvlm.models.generation`); it is the model's Hugging Face-style API and the reference the engine's tests
compare greedy tokens with.

Legend: ``b`` batch, ``l`` prompt length, ``new`` generated tokens.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch


@torch.no_grad()
def transformers_generate(
    model: Any,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor | None,
    media: Mapping[str, torch.Tensor],
    max_new_tokens: int = 128,
    do_sample: bool = False,
    temperature: float = 1.0,
    top_p: float = 1.0,
    **kwargs: Any,
) -> torch.Tensor:
    """New tokens ``[b, new]`` after each (left-padded) prompt. Placeholder tokens are never generated; greedy
    unless ``do_sample``.

    Args:
        model: the ``VideoLLaVA``.
        input_ids: ``[b, l]`` prompts, LEFT-padded in a batch.
        attention_mask: ``[b, l]``; required with padding.
        media: pixels by input name (``images``, ``videos``, a plugin's).
        **kwargs: to transformers' ``generate`` (``eos_token_id``, ``pad_token_id``, ``streamer``, ``top_k``,
            ``repetition_penalty``, ...).
    """
    if attention_mask is not None and bool((attention_mask[:, -1] == 0).any()):
        raise ValueError("generate() needs LEFT padding: a prompt row ends in padding")
    embeds = model.embed_inputs(input_ids, media)
    sampling = {"temperature": temperature, "top_p": top_p} if do_sample else {}
    # Placeholder rows get no probability (-inf before any sampling step), also when the caller suppresses more.
    suppressed = sorted(set(model.placeholder_ids) | set(kwargs.pop("suppress_tokens", None) or ()))
    output = model.llm.causal_lm.generate(
        input_ids=input_ids,
        inputs_embeds=embeds,
        attention_mask=attention_mask,
        max_new_tokens=max_new_tokens,
        do_sample=do_sample,
        suppress_tokens=suppressed,
        **sampling,
        **kwargs,
    )
    return output[:, input_ids.shape[1] :]
