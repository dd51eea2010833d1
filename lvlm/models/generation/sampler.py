"""Choosing each row's next token: greedy, or sampled with its temperature, top-p and its own generator.

Legend: ``b`` rows, ``v`` vocabulary.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from lvlm.models.generation.settings import GenerationSettings


def row_generator(settings: GenerationSettings, device: torch.device) -> torch.Generator | None:
    """The random generator of one sampled answer: seeded by its ``seed``, else by torch's global generator (so
    ``torch.manual_seed`` still fixes unseeded runs). None for greedy answers."""
    if settings.temperature == 0:
        return None
    seed = settings.seed if settings.seed is not None else int(torch.randint(2**62, (1,)))
    return torch.Generator(device).manual_seed(seed)


def top_p_filter(logits: torch.Tensor, top_p: float) -> torch.Tensor:
    """``[v]`` logits with the tokens outside the smallest set of mass ``top_p`` at -inf (as transformers'
    ``TopPLogitsWarper``: the most likely token always stays)."""
    if top_p >= 1:
        return logits
    ordered, order = torch.sort(logits, descending=False)
    outside = ordered.softmax(-1).cumsum(-1) <= 1 - top_p
    outside[-1] = False
    return logits.masked_fill(outside.scatter(0, order, outside), -float("inf"))


def choose_tokens(
    logits: torch.Tensor,
    settings: Sequence[GenerationSettings],
    generators: Sequence[torch.Generator | None],
    suppressed: Sequence[int] = (),
) -> torch.Tensor:
    """``[b, v]`` logits → ``[b]`` next tokens on the CPU; ``suppressed`` tokens (placeholders) are never chosen."""
    logits = logits.float()
    if suppressed:
        logits = logits.index_fill(1, torch.tensor(list(suppressed), device=logits.device), -float("inf"))
    tokens = logits.argmax(-1)
    for row, (setting, generator) in enumerate(zip(settings, generators, strict=True)):
        if generator is not None:
            scaled = top_p_filter(logits[row] / setting.temperature, setting.top_p)
            tokens[row] = torch.multinomial(scaled.softmax(-1), 1, generator=generator)[0]
    return tokens.cpu()
