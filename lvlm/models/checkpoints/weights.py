"""Reading and writing state dicts safely, and strict loading that names every bad key."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn

# Buffers some checkpoints carry that are recomputed at build time (spec §12).
IGNORED_SUFFIXES = ("rotary_emb.inv_freq", "embeddings.position_ids")


class CheckpointKeyError(KeyError):
    """A state dict does not match the model: lists missing and unexpected keys."""

    def __str__(self) -> str:
        return str(self.args[0])


def read_state_dict(directory: Path) -> dict[str, torch.Tensor]:
    """All weights of a directory: ``*.safetensors`` (single or indexed shards) or ``*.bin`` read with
    ``torch.load(weights_only=True)`` (never unpickling code)."""
    for index_name, reader in (
        ("model.safetensors.index.json", load_file),
        ("pytorch_model.bin.index.json", _load_bin),
    ):
        index = directory / index_name
        if index.is_file():
            files = sorted(set(json.loads(index.read_text())["weight_map"].values()))
            state: dict[str, torch.Tensor] = {}
            for name in files:
                state.update(reader(directory / name))
            return state
    for pattern, reader in (("*.safetensors", load_file), ("*.bin", _load_bin)):
        files = sorted(directory.glob(pattern))
        if files:
            state = {}
            for file in files:
                state.update(reader(file))
            return state
    raise FileNotFoundError(f"{directory}: no weights (*.safetensors or *.bin) found")


def _load_bin(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path, map_location="cpu", weights_only=True)


def write_state_dict(state: Mapping[str, torch.Tensor], directory: Path, max_shard_bytes: int = 5 * 2**30) -> None:
    """Safetensors, sharded with an index above ``max_shard_bytes``; tensors sharing storage are written once."""
    from huggingface_hub import split_torch_state_dict_into_shards

    state = {k: v.detach().contiguous() for k, v in _drop_aliases(state).items()}
    split = split_torch_state_dict_into_shards(state, max_shard_size=max_shard_bytes)
    for filename, keys in split.filename_to_tensors.items():
        save_file({k: state[k] for k in keys}, str(directory / filename), metadata={"format": "pt"})
    if split.is_sharded:
        index = {"metadata": split.metadata, "weight_map": split.tensor_to_filename}
        (directory / "model.safetensors.index.json").write_text(json.dumps(index, indent=2))


def _drop_aliases(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    seen: set[tuple[int, int]] = set()
    kept = {}
    for key, tensor in state.items():
        ident = (tensor.untyped_storage().data_ptr(), tensor.storage_offset())
        if tensor.numel() and ident in seen:
            continue
        seen.add(ident)
        kept[key] = tensor
    return kept


def aliased_keys(state: Mapping[str, torch.Tensor]) -> set[str]:
    """Keys whose tensor shares storage with an earlier key (tied embeddings): optional in a checkpoint."""
    return set(state) - set(_drop_aliases(state))


def load_strict(module: nn.Module, state: Mapping[str, torch.Tensor], source: str) -> None:
    """Load ``state`` into ``module``; any missing or unexpected key is an error that lists them all."""
    state = {k: v for k, v in state.items() if not k.endswith(IGNORED_SUFFIXES)}
    own = module.state_dict()
    expected = set(own)
    missing = sorted(expected - set(state) - aliased_keys(own))
    unexpected = sorted(set(state) - expected)
    if missing or unexpected:
        raise CheckpointKeyError(
            f"{source}: weights do not match the model.\n"
            f"  missing ({len(missing)}): {_preview(missing)}\n  unexpected ({len(unexpected)}): {_preview(unexpected)}"
        )
    mismatched = [
        f"{k}: checkpoint {list(v.shape)} vs model {list(own[k].shape)}"
        for k, v in state.items()
        if v.shape != own[k].shape
    ]
    if mismatched:
        raise CheckpointKeyError(f"{source}: shape mismatch for {len(mismatched)} tensors: {_preview(mismatched)}")
    module.load_state_dict(state, strict=False)


def _preview(keys: list[str], limit: int = 20) -> str:
    shown = ", ".join(keys[:limit])
    return shown + (f", ... (+{len(keys) - limit} more)" if len(keys) > limit else "") if keys else "none"


def rename(state: Mapping[str, torch.Tensor], rules: list[tuple[str, str]]) -> dict[str, torch.Tensor]:
    """Apply the first matching ``(prefix, replacement)`` rule to each key; keys matching none are kept."""
    out = {}
    for key, tensor in state.items():
        for prefix, replacement in rules:
            if key.startswith(prefix):
                key = replacement + key[len(prefix) :]
                break
        out[key] = tensor
    return out
