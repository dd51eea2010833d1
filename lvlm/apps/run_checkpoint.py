"""A training run's checkpoint (Lightning ``.ckpt`` or a sharded FSDP2/DCP folder) → the ``VideoLLaVA`` it holds.

Lightning checkpoints carry weights, not the model's shape: the model is rebuilt from the run's
hyper-parameters (``hyper_parameters`` in a ``.ckpt``, ``meta.pt`` next to a DCP folder) or, when given,
from the ``config.yaml`` LightningCLI saved with the run, and the weights are then loaded strictly.

A DCP folder (``.metadata`` + ``__<rank>_0.distcp``, written by ``ModelParallelStrategy``) is consolidated
with ``torch.distributed.checkpoint.format_utils.dcp_to_torch_save`` in one process, no process group needed
(Lightning's ``consolidate_checkpoint`` does not read ModelParallelStrategy's layout).
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import torch

from lvlm.core.errors import UserError
from lvlm.training import rebuild as training_rebuild

STATE_PREFIX = "model."


def is_dcp_dir(path: Path) -> bool:
    return path.is_dir() and (path / ".metadata").is_file()


def read_run_checkpoint(path: str | Path) -> dict[str, Any]:
    """``{"state_dict": ..., "hyper_parameters": ... (if recorded)}`` from a ``.ckpt`` file or a DCP folder."""
    path = Path(path)
    if is_dcp_dir(path):
        from torch.distributed.checkpoint.format_utils import dcp_to_torch_save

        with tempfile.TemporaryDirectory() as tmp:
            dcp_to_torch_save(str(path), str(Path(tmp) / "full.pt"))
            checkpoint = torch.load(Path(tmp) / "full.pt", map_location="cpu", weights_only=True)
        meta = path / "meta.pt"
        if meta.is_file():
            checkpoint = torch.load(meta, map_location="cpu", weights_only=True) | checkpoint
        return checkpoint
    if path.is_file():
        # weights_only: a checkpoint must never run pickled code; Lightning stores plain containers.
        return torch.load(path, map_location="cpu", weights_only=True)
    raise FileNotFoundError(
        f"{path}: not a Lightning .ckpt file nor a DCP checkpoint folder (one with a .metadata file)"
    )


def model_args_from_config(config_path: str | Path) -> dict[str, Any]:
    """The ``model:`` section of a LightningCLI ``config.yaml`` (``--config`` of merge-lora / convert)."""
    import yaml

    config = yaml.safe_load(Path(config_path).read_text())
    model = config.get("model") if isinstance(config, dict) else None
    if not isinstance(model, dict):
        raise UserError(f"{config_path}: no `model:` section; pass the config.yaml LightningCLI saved with the run")
    return model.get("init_args", model) if "class_path" in model else model


def rebuild_module(checkpoint: dict[str, Any], config_path: str | Path | None = None, source: str = "checkpoint"):
    """The run's ``LVLMModule`` with its weights, rebuilt from its vetted settings (or ``config_path``)."""
    if config_path is not None:
        settings, where = model_args_from_config(config_path), f"{config_path}: model"
    elif checkpoint.get("hyper_parameters"):
        settings, where = dict(checkpoint["hyper_parameters"]), f"{source}: hyper_parameters"
    else:
        raise UserError(
            f"{source}: records no hyper-parameters; pass --config with the config.yaml LightningCLI saved with the run"
        )
    module = training_rebuild.rebuild_module(settings, where)
    module.configure_model()
    missing, unexpected = module.load_state_dict(dict(checkpoint["state_dict"]), strict=False)
    if missing or unexpected:
        raise UserError(
            f"{source}: weights do not match the model rebuilt from its settings; "
            f"missing {sorted(missing)[:10]} unexpected {sorted(unexpected)[:10]}"
        )
    return module


def merge_lora_into(causal_lm: torch.nn.Module) -> int:
    """Fold every peft LoRA layer of ``causal_lm`` into its base layer (peft's ``merge`` then unwrap, in place,
    what ``merge_and_unload`` does for a ``PeftModel``). Returns the number of merged layers."""
    from peft.tuners.lora import LoraLayer

    merged = 0
    for name, module in list(causal_lm.named_modules()):
        if not isinstance(module, LoraLayer):
            continue
        module.merge(safe_merge=True)
        parent_name, _, child = name.rpartition(".")
        parent = causal_lm.get_submodule(parent_name) if parent_name else causal_lm
        setattr(parent, child, module.get_base_layer())
        merged += 1
    return merged
