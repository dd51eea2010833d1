"""Crafted files for every way lvlm reads one, each with a marker file that appears only if its code ran.

A payload is an object whose unpickling calls ``os.system("touch MARKER")``; a remote-code payload is a Python
file in a model folder that creates the marker when imported. Benign twins of every file are built the same way,
so each test can show the same command succeeds on them.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
import torch.distributed.checkpoint as dcp

from lvlm.training.module import LVLMModule
from tests.training.tiny import instantiate_module, tiny_model_args

LORA = {"r": 2, "alpha": 4, "dropout": 0.0, "target_modules": ["q_proj", "v_proj"]}


class Payload:
    """Unpickling this runs a shell command that creates ``marker``."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return os.system, (f"touch {self.marker}",)


def run_module(tokenizer_dir: Path, **overrides: Any) -> LVLMModule:
    """A tiny training run's module with its weights (towers, projector, LLM; LoRA if asked)."""
    torch.manual_seed(0)
    module = instantiate_module(tiny_model_args(tokenizer_dir, **overrides))
    module.configure_model()
    return module


def run_checkpoint(module: LVLMModule, **extra: Any) -> dict[str, Any]:
    """What Lightning saves in a ``.ckpt``: ``state_dict`` and ``hyper_parameters`` (plus ``extra``)."""
    return {"state_dict": module.state_dict(), "hyper_parameters": dict(module.hparams)} | extra


def write_dcp(folder: Path, module: LVLMModule, **extra: Any) -> Path:
    """A sharded (DCP) checkpoint folder as ModelParallelStrategy writes it, with ``meta.pt`` beside it."""
    dcp.save({"state_dict": module.state_dict(), **extra}, checkpoint_id=folder, no_dist=True)
    torch.save({"hyper_parameters": dict(module.hparams), "global_step": 2}, folder / "meta.pt")
    return folder


REMOTE_CODE = "from pathlib import Path\nPath({marker!r}).touch()\n"


def write_remote_code(folder: Path, marker: Path, module: str = "evil") -> None:
    """A Python module in ``folder`` that creates ``marker`` when imported (what an ``auto_map`` would import)."""
    (folder / f"{module}.py").write_text(REMOTE_CODE.format(marker=str(marker)))
