"""LoRA on the LLM only (peft), with the paper's defaults: r 128, alpha 256, dropout 0.05.

The adapters are injected into ``model.llm.causal_lm`` and nowhere else, so the towers' own
``q_proj``/``v_proj`` are never targeted whatever ``target_modules`` says (the trap of a plain
``["q_proj", "v_proj"]`` on a whole Video-LLaVA). Parameter names keep their place
(``...q_proj.base_layer.weight``, ``...q_proj.lora_A.default.weight``): no ``base_model.model`` prefix.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import torch
from torch import nn

# Every linear layer of a Llama block; lm_head excluded, as the original's find_all_linear_names does.
LLAMA_LINEARS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


@dataclass(frozen=True)
class LoRASettings:
    """The ``lora:`` block of a recipe."""

    r: int = 128
    alpha: int = 256
    dropout: float = 0.05
    target_modules: tuple[str, ...] = field(default=LLAMA_LINEARS)

    @property
    def scale(self) -> float:
        return self.alpha / self.r


def is_lora_parameter(name: str) -> bool:
    return ".lora_A." in name or ".lora_B." in name


def add_lora(causal_lm: nn.Module, settings: LoRASettings) -> nn.Module:
    """Inject LoRA adapters into ``causal_lm`` in place (fp32 adapters, B zero-initialised)."""
    from peft import LoraConfig, inject_adapter_in_model

    config = LoraConfig(
        r=settings.r,
        lora_alpha=settings.alpha,
        lora_dropout=settings.dropout,
        target_modules=list(settings.target_modules),
        bias="none",
    )
    return inject_adapter_in_model(config, causal_lm)


def merge_lora_state_dict(state: Mapping[str, torch.Tensor], settings: LoRASettings) -> dict[str, torch.Tensor]:
    """A plain state dict with every ``W + scale * B @ A`` folded in and peft's names removed.

    ``...q_proj.base_layer.weight`` + ``...q_proj.lora_{A,B}.default.weight`` → ``...q_proj.weight``.
    Own code because peft merges modules, and an FSDP2 export has only the gathered state dict (peft cannot
    merge inside FSDP); ``lvlm merge-lora`` merges modules with peft's own ``LoraLayer.merge``.
    """
    merged: dict[str, torch.Tensor] = {}
    for key, tensor in state.items():
        if is_lora_parameter(key):
            continue
        if ".base_layer." in key and key.endswith(".weight"):
            stem = key.removesuffix(".base_layer.weight")
            lora_a = state[f"{stem}.lora_A.default.weight"].float()
            lora_b = state[f"{stem}.lora_B.default.weight"].float()
            tensor = (tensor.float() + settings.scale * (lora_b @ lora_a)).to(tensor.dtype)
        merged[key.replace(".base_layer.", ".")] = tensor
    return merged
