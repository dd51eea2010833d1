"""Optimizer parameter groups and the per-step linear-warmup + cosine schedule.

Groups follow the original's ``LLaVATrainer.create_optimizer``: no weight decay on biases and norm
weights, and the projector in groups of its own when it has its own learning rate (the LoRA recipe:
LLM adapters at 2e-4, projector at 2e-5). The optimizer itself is any ``torch.optim`` class named in the
recipe (``model.optimisation.optimizer``); the schedule is transformers' cosine-with-warmup (:class:`WarmupCosineLR`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable

import torch
from torch import nn
from torch.optim import Optimizer
from torch.optim.lr_scheduler import LambdaLR, LRScheduler
from transformers import get_cosine_with_min_lr_schedule_with_warmup

OptimizerFactory = Callable[[Iterable], Optimizer]
SchedulerFactory = Callable[[Optimizer], LRScheduler]


def default_optimizer(params: Iterable) -> Optimizer:
    """AdamW at lr 1e-3 with no weight decay: the paper's stage-1 settings (recipes set their own)."""
    return torch.optim.AdamW(params, lr=1e-3, weight_decay=0.0)


def _no_decay(name: str, param: nn.Parameter) -> bool:
    # 1-D tensors are biases and norm scales (LayerNorm, RMSNorm); embeddings and linears are 2-D.
    return param.ndim < 2 or name.endswith(".bias")


def param_groups(
    model: nn.Module,
    weight_decay: float | None = None,
    projector_lr: float | None = None,
    projector_prefix: str = "projector.",
) -> list[dict]:
    """Parameter groups over the trainable parameters of ``model``; empty groups are dropped.

    Groups set ``weight_decay`` 0 on biases and norm weights and leave the optimizer's own weight decay (or
    ``weight_decay`` when given) on the rest; the projector's groups carry ``projector_lr`` when given, the
    others the optimizer's learning rate.

    Args:
        model: a module whose projector's parameters are named ``projector_prefix + ...``.
        weight_decay: weight decay of 2-D weights; None keeps the optimizer's.
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
        group: dict = {
            "params": params,
            "name": ("projector" if is_projector else "main") + ("_no_decay" if no_decay else ""),
        }
        if is_projector:
            group["lr"] = projector_lr
        if no_decay:
            group["weight_decay"] = 0.0
        elif weight_decay is not None:
            group["weight_decay"] = weight_decay
        out.append(group)
    if not out:
        raise ValueError(
            "no parameter requires grad: set model.optimisation.train_projector, train_llm, train_vision or lora"
        )
    return out


class WarmupCosineLR(LambdaLR):
    """Linear warmup from 0 over ``ceil(warmup_ratio * total_steps)`` optimizer steps, then cosine decay to
    ``min_lr_ratio`` of the peak: transformers' ``get_cosine_with_min_lr_schedule_with_warmup`` (the original's
    ``cosine`` schedule with ``warmup_ratio``), as a class a recipe can name.

    Args:
        optimizer: the optimizer.
        warmup_ratio: warmup length as a fraction of the run.
        min_lr_ratio: the final learning rate as a fraction of the peak.
        total_steps: optimizer steps of the run; ``LVLMModule`` passes the trainer's estimate.
    """

    def __init__(
        self,
        optimizer: Optimizer,
        warmup_ratio: float = 0.03,
        min_lr_ratio: float = 0.0,
        total_steps: int | None = None,
    ) -> None:
        if total_steps is None or total_steps <= 0:
            raise ValueError(f"the schedule needs a positive number of steps, got {total_steps}")
        schedule = get_cosine_with_min_lr_schedule_with_warmup(
            optimizer, math.ceil(warmup_ratio * total_steps), total_steps, min_lr_rate=min_lr_ratio
        )
        self.warmup_ratio, self.min_lr_ratio, self.total_steps = warmup_ratio, min_lr_ratio, total_steps
        super().__init__(optimizer, schedule.lr_lambdas)
