"""Likelihood scoring: how probable an answer is, given its prompt and media (multiple-choice by likelihood).

A scored sample comes from :func:`lvlm.inference.prompts.prepare_scoring_prompt`: its ``labels`` mark the answer
tokens. One forward pass per batch (right-padded) gives, for every sample, the sum of the answer tokens' log
probabilities and whether greedy decoding would have produced exactly those tokens. Placeholder tokens get no
probability mass, as in generation (where they are suppressed).

Legend: ``b`` batch, ``l`` padded length, ``n`` positions that predict an answer token, ``v`` vocabulary.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from lvlm.data.collate import Collator, ProcessedSample
from lvlm.data.tokenization import IGNORE_INDEX
from lvlm.inference.session import InferenceSession


@dataclass(frozen=True)
class AnswerScore:
    """The score of one answer.

    Attributes:
        logprob: sum of the natural-log probabilities of the answer tokens.
        is_greedy: every answer token is the most probable token at its position.
        tokens: how many tokens were scored.
    """

    logprob: float
    is_greedy: bool
    tokens: int


@torch.no_grad()
def score_answers(session: InferenceSession, samples: Sequence[ProcessedSample]) -> list[AnswerScore]:
    """Score a batch of prepared answers, in the same order.

    Args:
        session: the loaded checkpoint.
        samples: from :func:`~lvlm.inference.prompts.prepare_scoring_prompt` (``labels`` mark the answer).
    """
    pad_id = session.tokenizer.pad_token_id
    batch = Collator(pad_id if pad_id is not None else session.tokenizer.eos_token_id, padding_side="right")(samples)
    device = session.device
    labels = batch["labels"].to(device)  # [b, l]
    media = {slot.batch_key: batch[slot.batch_key].to(device) for slot in session.slots if slot.batch_key in batch}
    output = session.model(
        batch["input_ids"].to(device),
        attention_mask=batch["attention_mask"].to(device),
        labels=labels,
        loss_only=True,
        **media,
    )
    positions = (labels[:, 1:] != IGNORE_INDEX).any(dim=0).nonzero().squeeze(-1)  # [n]
    logits = output.logits  # [b, n, v], or [b, l, v] when the LLM cannot keep positions
    if logits.shape[1] != positions.shape[0]:
        logits = logits[:, positions]
    logits = logits.float()
    logits[..., session.model.placeholder_ids] = float("-inf")
    logprobs = torch.log_softmax(logits, dim=-1)  # [b, n, v]
    targets = labels[:, positions + 1]  # [b, n]
    scored = targets != IGNORE_INDEX
    picked = logprobs.gather(-1, targets.clamp(min=0).unsqueeze(-1)).squeeze(-1)  # [b, n]
    greedy = logprobs.argmax(dim=-1) == targets
    return [
        AnswerScore(
            logprob=float(picked[row][scored[row]].sum()),
            is_greedy=bool(greedy[row][scored[row]].all()),
            tokens=int(scored[row].sum()),
        )
        for row in range(len(samples))
    ]
