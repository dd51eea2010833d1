"""AdamW parameter groups and the per-step linear-warmup + cosine schedule (HF ``cosine`` schedule).

Groups follow the original's ``LLaVATrainer.create_optimizer``: no weight decay on biases and norm
weights, and the projector in groups of its own when it has its own learning rate (the LoRA recipe:
LLM adapters at 2e-4, projector at 2e-5).
"""

from __future__ import annotations

import math
from collections.abc import Callable

from torch import nn


def _no_decay(name: str, param: nn.Parameter) -> bool:
    # 1-D tensors are biases and norm scales (LayerNorm, RMSNorm); embeddings and linears are 2-D.
    return param.ndim < 2 or name.endswith(".bias")


def param_groups(
    model: nn.Module,
    lr: float,
    weight_decay: float = 0.0,
    projector_lr: float | None = None,
    projector_prefix: str = "projector.",
) -> list[dict]:
    """AdamW groups over the trainable parameters of ``model``; empty groups are dropped.

    Args:
        model: a module whose projector's parameters are named ``projector_prefix + ...``.
        lr: learning rate of everything but the projector (and of the projector when ``projector_lr`` is None).
        weight_decay: applied to 2-D weights only.
        projector_lr: separate learning rate for the projector.
    """
    groups: dict[tuple[bool, bool], list[nn.Parameter]] = {}
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        is_projector = projector_lr is not None and name.startswith(projector_prefix)
        groups.setdefault((is_projector, _no_decay(name, param)), []).append(param)
    out = []
    for (is_projector, no_decay), params in sorted(groups.items()):
        out.append(
            {
                "params": params,
                "lr": projector_lr if is_projector else lr,
                "weight_decay": 0.0 if no_decay else weight_decay,
                "name": ("projector" if is_projector else "main") + ("_no_decay" if no_decay else ""),
            }
        )
    if not out:
        raise ValueError("no parameter requires grad: set train_projector, train_llm, train_vision or lora")
    return out


def warmup_cosine(total_steps: int, warmup_ratio: float = 0.03, min_lr_ratio: float = 0.0) -> Callable[[int], float]:
    """LR multiplier per optimizer step: linear from 0 over ``ceil(ratio * total)`` steps, then cosine to
    ``min_lr_ratio`` (HF ``get_cosine_schedule_with_warmup`` with ``warmup_steps = ceil(ratio * total)``)."""
    if total_steps <= 0:
        raise ValueError(f"the schedule needs a positive number of steps, got {total_steps}")
    warmup = math.ceil(warmup_ratio * total_steps)

    def multiplier(step: int) -> float:
        if step < warmup:
            return step / max(1, warmup)
        progress = min(1.0, (step - warmup) / max(1, total_steps - warmup))
        return min_lr_ratio + (1.0 - min_lr_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))

    return multiplier
