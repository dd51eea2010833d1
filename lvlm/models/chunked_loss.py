"""Cross-entropy over chunks of logits, the gradient computed in forward: no vocabulary-wide float32 copies kept.

``F.cross_entropy(logits.float(), ...)`` on bf16 logits keeps a float32 copy of them and its log-softmax for
backward, then makes a float32 gradient and casts it back: about 10 bytes per logit at once besides the logits.
Here each chunk of :data:`CHUNK_TOKENS` rows is upcast, its loss summed and its gradient (softmax minus the
one-hot target, over the supervised count) written straight into one tensor of the logits' dtype; backward only
scales that tensor. The float32 work exists for one chunk at a time. This is the loss half of Liger's fused linear
cross-entropy (the LM head is not fused here: the logits are the LLM's output).

Legend: ``s`` rows (tokens), ``v`` vocabulary, ``c`` rows in a chunk.
"""

from __future__ import annotations

from typing import Any

import torch

from lvlm.models.fusion import IGNORE_INDEX

# At a 32,000 vocabulary one chunk's float32 scores are 125 MiB.
CHUNK_TOKENS = 1024


def _chunk(
    logits: torch.Tensor, targets: torch.Tensor, excluded: torch.Tensor | None, count: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """``[c, v]`` logits and ``[c]`` targets → summed loss (float32) and the ``[c, v]`` gradient of the sum over
    ``count``."""
    scores = logits.float()
    if excluded is not None:
        scores = scores.index_fill(-1, excluded, float("-inf"))  # a new tensor: the caller's logits stay as they are
    supervised = targets != IGNORE_INDEX
    picked = targets.clamp(min=0).unsqueeze(-1)
    log_probs = torch.log_softmax(scores, dim=-1)  # a new tensor, worked on in place below
    losses = -log_probs.gather(-1, picked).squeeze(-1)
    grad = log_probs.exp_().scatter_add_(-1, picked, torch.full_like(picked, -1, dtype=log_probs.dtype))
    grad.mul_((supervised / count).unsqueeze(-1))  # ignored rows get none; the mean's 1 / count
    return torch.where(supervised, losses, 0.0).sum(), grad


class ChunkedCrossEntropy(torch.autograd.Function):
    """Mean cross-entropy of ``[s, v]`` logits against ``[s]`` targets (-100 ignored), ``excluded`` rows at -inf."""

    @staticmethod
    def forward(
        ctx: Any, logits: torch.Tensor, targets: torch.Tensor, excluded: torch.Tensor | None, chunk_tokens: int
    ) -> torch.Tensor:
        count = (targets != IGNORE_INDEX).sum()
        grad = torch.empty_like(logits) if ctx.needs_input_grad[0] else None
        total = torch.zeros((), dtype=torch.float32, device=logits.device)
        for start in range(0, logits.shape[0], chunk_tokens):
            part = slice(start, start + chunk_tokens)
            summed, part_grad = _chunk(logits[part], targets[part], excluded, count)
            total += summed
            if grad is not None:
                grad[part] = part_grad
        ctx.save_for_backward(grad)
        return total / count

    @staticmethod
    def backward(ctx: Any, grad_output: torch.Tensor) -> tuple[torch.Tensor | None, None, None, None]:
        (grad,) = ctx.saved_tensors
        if bool(grad_output == 1):  # loss.backward(): the saved gradient as it is (one pass over it less)
            return grad, None, None, None
        # Out of place: the saved gradient stays valid for a second backward (retain_graph).
        return grad * grad_output.to(grad.dtype), None, None, None


def chunked_cross_entropy(
    logits: torch.Tensor, targets: torch.Tensor, excluded_ids: list[int], chunk_tokens: int = CHUNK_TOKENS
) -> torch.Tensor:
    """Mean cross-entropy (float32) of ``[s, v]`` logits against ``[s]`` targets, over the vocabulary rows not in
    ``excluded_ids``; the same as ``F.cross_entropy(logits.float(), targets, ignore_index=-100)`` then."""
    excluded = torch.as_tensor(excluded_ids, device=logits.device, dtype=torch.long) if excluded_ids else None
    return ChunkedCrossEntropy.apply(logits, targets, excluded, chunk_tokens)
