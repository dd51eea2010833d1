"""An answer's log-probability the long way: prompt ids, then the answer ids, one unpadded forward pass."""

from __future__ import annotations

import torch

from lvlm.inference.prompts import prepare_prompt, question_conversation


def reference_logprob(session, question, kinds, media, answer_ids):
    """``(sum of the answer tokens' log-probabilities, whether each is the argmax)``; placeholders get no mass."""
    prompt = prepare_prompt(session, question_conversation(question, [session.modality(k) for k in kinds]), media)
    ids = torch.cat([prompt.input_ids, torch.tensor(answer_ids)]).unsqueeze(0)
    tensors = {key: torch.stack([t for k, t in prompt.media if k == key]) for key, _ in prompt.media}
    with torch.no_grad():
        logits = session.model(ids, attention_mask=torch.ones_like(ids), **tensors).logits[0].float()
    logits[:, session.model.placeholder_ids] = float("-inf")
    logprobs = torch.log_softmax(logits, dim=-1)
    start = prompt.input_ids.shape[0]
    picked = [logprobs[start - 1 + i, token] for i, token in enumerate(answer_ids)]
    greedy = all(int(logprobs[start - 1 + i].argmax()) == token for i, token in enumerate(answer_ids))
    return float(sum(picked)), greedy
