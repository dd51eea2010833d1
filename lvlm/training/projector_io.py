"""Stage 1 → stage 2 hand-off: the projector alone, as ``projector.safetensors`` (keys ``0.weight``, ...).

Stage 2 also reads the original Video-LLaVA ``mm_projector.bin`` (keys ``model.mm_projector.0.weight``,
read with ``torch.load(weights_only=True)``, so no pickled code ever runs).
"""

from __future__ import annotations

import re
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from lvlm.models.io.weights import load_pickled_weights

PROJECTOR_FILE = "projector.safetensors"
_ORIGINAL_PREFIX = re.compile(r"^(?:.*\.)?mm_projector\.")


def full_state_dict(module: nn.Module) -> dict[str, torch.Tensor]:
    """CPU tensors of ``module``; sharded (DTensor) parameters are gathered, so every rank must call it."""
    state = {}
    for key, value in module.state_dict().items():
        if hasattr(value, "full_tensor"):
            value = value.full_tensor()
        state[key] = value.detach().to("cpu").contiguous()
    return state


def save_projector(state: dict[str, torch.Tensor], path: str | Path) -> Path:
    """Write a projector state dict (from :func:`full_state_dict`) as safetensors."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # one metadata key: safetensors writes a map's keys in an order that varies between processes, and the same
    # projector must give the same bytes
    save_file(state, str(path), metadata={"format": "pt"})
    return path


def read_projector(path: str | Path) -> dict[str, torch.Tensor]:
    """The projector weights of a ``.safetensors`` file or an original ``mm_projector.bin``, keys ``0.weight``…"""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"projector_checkpoint {str(path)!r} does not exist: point it at the projector.safetensors "
            "written by stage 1 (recipes/pretrain.yaml) or at an original mm_projector.bin"
        )
    if path.suffix == ".safetensors":
        state = load_file(str(path))
    else:
        state = load_pickled_weights(path)
    return {_ORIGINAL_PREFIX.sub("", key): value for key, value in state.items()}


def load_projector(projector: nn.Module, path: str | Path) -> None:
    """Copy the weights at ``path`` into ``projector``; names the file and every mismatch on error."""
    state = read_projector(path)
    expected = {k: tuple(v.shape) for k, v in projector.state_dict().items()}
    found = {k: tuple(v.shape) for k, v in state.items()}
    if expected != found:
        raise ValueError(
            f"projector_checkpoint {str(path)!r} does not fit this model's projector: expected {expected}, "
            f"found {found} (check the projector kind and the tower/LLM widths of the recipe)"
        )
    with torch.no_grad():
        for key, param in projector.state_dict().items():
            param.copy_(state[key].to(param.dtype))
