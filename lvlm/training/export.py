"""End-of-fit exports: the projector (stage 1 → stage 2) and the whole model as an lvlm checkpoint.

Both work on a plain or an FSDP2-sharded model: weights are gathered on every rank (a collective) and
written by rank 0 only. LoRA adapters are folded into the LLM weights, so the exported directory is a
plain lvlm checkpoint that ``VideoLLaVA.from_pretrained`` and ``lvlm chat`` read.

Before training, :func:`check_export_paths` refuses an export path that is, contains or lies inside a file the
run reads (tokenizer, LLM, towers, stage-1 projector, data), one that is or contains the run folder, and an
existing non-empty one unless ``model.export.overwrite``. Exports are built in a temporary sibling and swapped in
whole, so no file of an older export survives beside the new ones.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from lvlm.core.outputs import OutputError, check_output, paths_named_in, staged_output
from lvlm.training.lora import LoRASettings, merge_lora_state_dict

EXPORT_GROUP = "export"
EXPORT_SETTINGS = ("dir", "projector")  # the fields of ``model.export`` that name outputs


def check_export_paths(
    settings: Mapping[str, Any],
    data_settings: Mapping[str, Any] | None = None,
    run_dir: str | os.PathLike[str] | None = None,
    overwrite: bool = False,
) -> None:
    """Refuse, before training, exports that would destroy an input or the run, or an older export unasked.

    Args:
        settings: the module's hyper-parameters (``export.dir``, ``export.projector`` and what the run reads).
        data_settings: the data module's hyper-parameters (its sources are inputs too).
        run_dir: the trainer's folder (checkpoints, logs): an export may lie inside it, never hold it.
        overwrite: accept an existing non-empty export (``model.export.overwrite``).
    """
    inputs = paths_named_in(dict(settings), skip=(EXPORT_GROUP,)) + paths_named_in(dict(data_settings or {}))
    exports = settings.get(EXPORT_GROUP) or {}
    for key in EXPORT_SETTINGS:
        path = exports.get(key)
        if path is None:
            continue
        check_output(path, inputs, overwrite, f"model.export.{key}")
        if run_dir is not None:
            out, run = Path(path).resolve(), Path(run_dir).resolve()
            if out == run or out in run.parents:
                raise OutputError(
                    f"model.export.{key} {path} is or contains the run folder {run_dir}: the export would replace its "
                    "checkpoints and logs; export to a folder of its own"
                )


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
        with staged_output(directory) as staged:
            save_model(_Snapshot(model.to_config(), state), staged, layout="lvlm", tokenizer=tokenizer)
    return directory
