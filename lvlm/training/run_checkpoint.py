"""A training run's checkpoint (Lightning ``.ckpt`` or a sharded FSDP2/DCP folder) → the ``VideoLLaVA`` it holds,
and the one export of it as a checkpoint directory (LoRA merged) that ``lvlm convert`` and ``lvlm merge-lora`` run.

Lightning checkpoints carry weights, not the model's shape: the model is rebuilt from the run's
hyper-parameters (``hyper_parameters`` in a ``.ckpt``, ``meta.pt`` next to a DCP folder) or, when given,
from the ``config.yaml`` LightningCLI saved with the run, and the weights are then loaded strictly.

A DCP folder (``.metadata`` + ``__<rank>_0.distcp``, written by ``ModelParallelStrategy``) is consolidated
in one process, no process group needed, by :func:`lvlm.models.checkpoints.dcp.load_dcp`: torch's own
``dcp_to_torch_save`` unpickles ``.metadata`` with plain pickle, which would run a crafted folder's code
(Lightning's ``consolidate_checkpoint`` does not read ModelParallelStrategy's layout either).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from peft.tuners.lora import LoraLayer

from lvlm.core.errors import UserError
from lvlm.core.outputs import check_output, paths_named_in, staged_output
from lvlm.modalities.media_record import CHECKPOINT_KEY as MEDIA_CHECKPOINT_KEY
from lvlm.models.checkpoints.dcp import is_dcp_folder, load_dcp
from lvlm.models.io.weights import load_pickled_weights
from lvlm.models.language_model import _dtype
from lvlm.training.rebuild import rebuild_module

STATE_PREFIX = "model."

# Hyper-parameters that name where a run wrote, not what it read: they never choose an output of lvlm.
OUTPUT_SETTINGS = ("export",)  # model.export: what a run writes


def read_run_checkpoint(path: str | Path) -> dict[str, Any]:
    """``{"state_dict": ..., "hyper_parameters": ... (if recorded)}`` from a ``.ckpt`` file or a DCP folder."""
    path = Path(path)
    if is_dcp_folder(path):
        checkpoint = load_dcp(path)
        meta = path / "meta.pt"
        if meta.is_file():
            checkpoint = load_pickled_weights(meta) | checkpoint
        return checkpoint
    if path.is_file():
        # weights_only: a checkpoint must never run pickled code; Lightning stores plain containers.
        return load_pickled_weights(path)
    raise FileNotFoundError(
        f"{path}: not a Lightning .ckpt file nor a DCP checkpoint folder (one with a .metadata file)"
    )


def paths_read_by(settings: dict[str, Any]) -> list[str]:
    """Every existing file or folder named in a run's settings (tokenizer, LLM, towers, projector...): a
    conversion of the run must not write over them. Output settings (``export``) are left out."""
    return paths_named_in(settings, skip=OUTPUT_SETTINGS)


def model_args_from_config(config_path: str | Path) -> dict[str, Any]:
    """The ``model:`` section of a LightningCLI ``config.yaml`` (``--run-config`` of merge-lora / convert)."""
    import yaml

    config = yaml.safe_load(Path(config_path).read_text())
    model = config.get("model") if isinstance(config, dict) else None
    if not isinstance(model, dict):
        raise UserError(f"{config_path}: no `model:` section; pass the config.yaml LightningCLI saved with the run")
    return model.get("init_args", model) if "class_path" in model else model


def load_run_module(checkpoint: dict[str, Any], config_path: str | Path | None = None, source: str = "checkpoint"):
    """The run's ``LVLMModule`` with its weights, rebuilt from its vetted settings (or ``config_path``)."""
    if config_path is not None:
        settings, where = model_args_from_config(config_path), f"{config_path}: model"
    elif checkpoint.get("hyper_parameters"):
        settings, where = dict(checkpoint["hyper_parameters"]), f"{source}: hyper_parameters"
    else:
        raise UserError(
            f"{source}: records no hyper-parameters; pass --run-config with the config.yaml LightningCLI saved with "
            "the run"
        )
    module = rebuild_module(settings, where)
    if isinstance(checkpoint.get(MEDIA_CHECKPOINT_KEY), dict):  # how the run fed its towers (frames...)
        module.record_media(checkpoint[MEDIA_CHECKPOINT_KEY])
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
    what ``merge_and_unload`` does for a ``PeftModel``). Returns the number of merged layers.

    A loop over peft's own ``LoraLayer.merge`` because ``merge_and_unload`` needs a ``PeftModel`` wrapper, and lvlm
    injects adapters with ``inject_adapter_in_model`` (no wrapper, so parameter names stay where they were).
    """
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


def export_run_checkpoint(
    checkpoint: str | Path,
    out: str | Path,
    layout: str = "lvlm",
    run_config: str | Path | None = None,
    dtype: str | None = None,
    overwrite: bool = False,
    require_lora: bool = False,
) -> tuple[Any, int]:
    """Write a run's model (LoRA adapters merged) as a checkpoint directory with the run's tokenizer.

    ``out`` may not be, contain or lie inside an input (the checkpoint, the config, a file the run read); an
    existing non-empty ``out`` needs ``overwrite`` and is replaced whole once the new one is complete.

    Returns:
        The rebuilt ``LVLMModule`` (its ``model`` is what was written) and the number of merged LoRA layers.

    Raises:
        ValueError: ``require_lora`` and the run trained no adapters.
        UserError: an unusable checkpoint, config or output.
    """
    out = check_output(out, [checkpoint, run_config], overwrite, "--out")
    module = load_run_module(read_run_checkpoint(checkpoint), run_config, source=str(checkpoint))
    check_output(out, paths_read_by(dict(module.hparams)), overwrite, "--out")
    if require_lora and module.lora is None:
        raise ValueError(
            f"{checkpoint}: this run trained no LoRA adapters (model.optimisation.lora is null); "
            f"use `lvlm convert --checkpoint {checkpoint} --out DIR` to export it as it is"
        )
    model = module.model.eval()
    merged = merge_lora_into(model.llm.causal_lm) if module.lora is not None else 0
    if require_lora and merged == 0:
        raise ValueError(f"{checkpoint}: model.optimisation.lora is set but no LoRA layer was found in the LLM")
    if dtype is not None:
        model = model.to(_dtype(dtype))
    with staged_output(out) as staged:
        model.save_pretrained(staged, layout=layout, tokenizer=module.tokenizer)
    return module, merged
