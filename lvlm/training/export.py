"""End-of-fit exports: the projector (stage 1 → stage 2) and the whole model as an lvlm checkpoint.

Both work on a plain or an FSDP2-sharded model: weights are gathered on every rank (a collective) and
written by rank 0 only. LoRA adapters are folded into the LLM weights, so the exported directory is a
plain lvlm checkpoint that ``VideoLLaVA.from_pretrained`` and ``lvlm chat`` read.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from lvlm.training.lora import LoRASettings, merge_lora_state_dict


class _Snapshot:
    """What :func:`lvlm.models.checkpoints.save.save_model` reads of a model: its config and its weights."""

    def __init__(self, config: dict[str, Any], state: dict[str, torch.Tensor]) -> None:
        self._config, self._state = config, state

    def to_config(self) -> dict[str, Any]:
        return self._config

    def state_dict(self) -> dict[str, torch.Tensor]:
        return self._state


def gathered_state_dict(model: nn.Module, sharded: bool) -> dict[str, torch.Tensor]:
    """Full CPU state dict; with ``sharded`` every rank must call it and rank 0 gets the tensors."""
    if not sharded:
        return {k: v.detach().cpu() for k, v in model.state_dict().items()}
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

    return get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))


def export_model(
    model: nn.Module,
    directory: str | Path,
    tokenizer: Any,
    sharded: bool,
    is_rank_zero: bool,
    lora: LoRASettings | None = None,
) -> Path:
    """Write ``model`` (a VideoLLaVA, possibly sharded, possibly with LoRA) and ``tokenizer`` to ``directory``."""
    from lvlm.models.checkpoints.save import save_model

    state = gathered_state_dict(model, sharded)
    directory = Path(directory)
    if is_rank_zero:
        if lora is not None:
            state = merge_lora_state_dict(state, lora)
        save_model(_Snapshot(model.to_config(), state), directory, layout="lvlm", tokenizer=tokenizer)
    return directory
