"""Reading and writing state dicts safely, and strict loading that names every bad key."""

from __future__ import annotations

import json
import os
import pickle
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from lvlm.core.errors import UnsafeInputError, UserError

# Buffers some checkpoints carry that are recomputed at build time.
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
            state: dict[str, torch.Tensor] = {}
            for path in indexed_files(index):
                state.update(reader(path))
            return state
    for pattern, reader in (("*.safetensors", load_file), ("*.bin", _load_bin)):
        files = sorted(directory.glob(pattern))
        if files:
            state = {}
            for file in files:
                state.update(reader(file))
            return state
    raise FileNotFoundError(f"{directory}: no weights (*.safetensors or *.bin) found")


def indexed_files(index: Path) -> list[Path]:
    """The weight files an index's ``weight_map`` names; each must be a plain file inside the index's folder
    (an absolute name, ``..`` or a symlink leading out is refused: a checkpoint reads only its own files)."""
    try:
        weight_map = json.loads(index.read_text())["weight_map"]
        names = sorted(set(weight_map.values()))
    except (ValueError, KeyError, TypeError, AttributeError) as err:
        raise UserError(f"{index}: not a weight index (a JSON object with a `weight_map`): {err}") from err
    roots = _own_roots(index.parent)
    files = []
    for name in names:
        if not isinstance(name, str) or not name or os.path.isabs(name) or ".." in Path(name).parts:
            raise UnsafeInputError(f"{index}: weight file {name!r} is not a file name inside {index.parent}")
        path = index.parent / name
        if not any(root in path.resolve().parents for root in roots):
            raise UnsafeInputError(
                f"{index}: weight file {name!r} resolves to {path.resolve()}, outside {index.parent}"
            )
        files.append(path)
    return files


def _own_roots(folder: Path) -> list[Path]:
    """Where a folder's files may really be: the folder, and for a Hugging Face cache snapshot
    (``<repo>/snapshots/<rev>``, files symlinked to ``<repo>/blobs``) its repository's blobs."""
    roots = [folder.resolve()]
    if folder.resolve().parent.name == "snapshots":
        roots.append(folder.resolve().parent.parent / "blobs")
    return roots


def load_pickled_weights(path: str | os.PathLike[str], mmap: bool = False) -> Any:
    """``torch.load(path, weights_only=True)``: tensors and plain containers only; a file that asks to run code
    (any other class or function) is refused with :class:`UnsafeInputError` naming it."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
    except pickle.UnpicklingError as err:
        raise UnsafeInputError(
            f"{path}: refused to load it: it holds more than tensors and plain data, and loading it would run code "
            f"({str(err).splitlines()[-1] if str(err) else 'unpickling refused'})"
        ) from err


def _load_bin(path: Path) -> dict[str, torch.Tensor]:
    try:  # memory-mapped: pages are read when the tensor is, and stay reclaimable page cache
        return load_pickled_weights(path, mmap=True)
    except RuntimeError as err:
        if "mmap" not in str(err):  # only files in torch's legacy (pre-zip) format cannot be mapped
            raise
        return load_pickled_weights(path)


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


def load_strict(
    module: nn.Module, state: Mapping[str, torch.Tensor], source: str, dtype: torch.dtype | None = None
) -> None:
    """Load ``state`` into ``module``; any missing or unexpected key is an error that lists them all.

    The tensors are assigned, not copied: ``module`` may be built under ``no_init_weights`` and its never
    written allocations are dropped, so loading holds one copy of the weights (cast to ``dtype``, or to the
    module's dtypes) plus the checkpoint's memory-mapped pages. Parameters keep their ``requires_grad``; weights
    tied in ``module`` (e.g. ``lm_head`` and the input embeddings) stay tied. The assigned tensors never alias
    the checkpoint files, so the model can be saved over the directory it came from.
    """
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
    ties = _tied_groups(own)
    del own
    owned = {key: _owned(state.pop(key), module_dtype, dtype) for key, module_dtype in _dtypes(module, state).items()}
    module.load_state_dict(owned, strict=False, assign=True)
    _retie(module, ties, set(owned))


def _dtypes(module: nn.Module, state: Mapping[str, torch.Tensor]) -> dict[str, torch.dtype]:
    own = dict(module.named_parameters(remove_duplicate=False)) | dict(module.named_buffers(remove_duplicate=False))
    return {key: own[key].dtype for key in list(state)}


def _owned(tensor: torch.Tensor, module_dtype: torch.dtype, dtype: torch.dtype | None) -> torch.Tensor:
    """``tensor`` in the dtype it is loaded as, in memory of its own (never a view of a mapped file)."""
    target = dtype if dtype is not None and tensor.is_floating_point() and module_dtype.is_floating_point else None
    converted = tensor.to(target or module_dtype)
    return converted.clone() if converted.data_ptr() == tensor.data_ptr() else converted


def _tied_groups(own: Mapping[str, torch.Tensor]) -> list[list[str]]:
    """Keys of ``own`` that share one tensor, in groups of two or more (tied weights, shared submodules)."""
    groups: dict[tuple[int, int, tuple[int, ...]], list[str]] = {}
    for key, tensor in own.items():
        if tensor.numel():
            place = (tensor.untyped_storage().data_ptr(), tensor.storage_offset(), tuple(tensor.shape))
            groups.setdefault(place, []).append(key)
    return [keys for keys in groups.values() if len(keys) > 1]


def _retie(module: nn.Module, groups: list[list[str]], loaded: set[str]) -> None:
    """Point every key of each tied group at the tensor loaded for the group (assignment untied them)."""
    for keys in groups:
        source = next((key for key in keys if key in loaded), None)
        if source is None:
            continue
        owner, _, name = source.rpartition(".")
        tensor = getattr(module.get_submodule(owner), name)  # a parameter or a buffer
        for key in keys:
            owner, _, name = key.rpartition(".")
            setattr(module.get_submodule(owner), name, tensor)


def _preview(keys: list[str], limit: int = 20) -> str:
    shown = ", ".join(keys[:limit])
    return shown + (f", ... (+{len(keys) - limit} more)" if len(keys) > limit else "") if keys else "none"
