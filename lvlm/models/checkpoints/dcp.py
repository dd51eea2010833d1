"""Sharded (torch distributed checkpoint, DCP) folders read without running code from them.

torch reads a DCP folder's ``.metadata`` with plain :mod:`pickle` and the non-tensor items of its ``.distcp``
files with an unrestricted unpickler (``weights_only`` off): a crafted folder runs code as it is read. Here
``.metadata`` goes through :class:`MetadataUnpickler`, which admits only what torch writes there (the dataclasses of
``torch.distributed.checkpoint.metadata``, ``_StorageInfo``, ``torch.Size``, dtypes and layouts, the memory-format
enum, ``pathlib`` paths), every storage file named there must lie inside the folder, and non-tensor items are read
with ``torch.load(weights_only=True)``. Anything else is refused with :class:`~lvlm.core.errors.UnsafeInputError`
naming the file.
"""

from __future__ import annotations

import enum
import io
import os
import pickle
from pathlib import Path
from typing import Any

import torch
from torch.distributed.checkpoint import FileSystemReader
from torch.distributed.checkpoint._traverse import set_element
from torch.distributed.checkpoint.filesystem import _StorageInfo
from torch.distributed.checkpoint.format_utils import _EmptyStateDictLoadPlanner
from torch.distributed.checkpoint.metadata import BytesStorageMetadata, Metadata, MetadataIndex, StorageMeta
from torch.distributed.checkpoint.state_dict_loader import _load_state_dict

from lvlm.core.errors import UnsafeInputError

METADATA_FILE = ".metadata"

# (module, name) pairs torch's DCP writers put in `.metadata` (torch 2.3-2.x, FileSystemWriter + DefaultSavePlanner).
_ALLOWED_CLASSES = {
    ("torch.distributed.checkpoint.metadata", name)
    for name in (
        "Metadata",
        "MetadataIndex",
        "TensorStorageMetadata",
        "BytesStorageMetadata",
        "ChunkStorageMetadata",
        "TensorProperties",
        "StorageMeta",
        "_MEM_FORMAT_ENCODING",
    )
} | {
    ("torch.distributed.checkpoint.filesystem", "_StorageInfo"),
    ("torch", "Size"),
    ("torch.serialization", "_get_layout"),  # how a torch.layout pickles (looks one up by name)
    ("pathlib", "PosixPath"),  # StorageMeta.checkpoint_id
    ("pathlib", "PurePosixPath"),
    ("pathlib", "WindowsPath"),
    ("pathlib", "PureWindowsPath"),
    ("pathlib._local", "PosixPath"),  # Python >= 3.13 pickles paths from here
    ("pathlib._local", "PurePosixPath"),
    ("pathlib._local", "WindowsPath"),
    ("pathlib._local", "PureWindowsPath"),
    ("collections", "OrderedDict"),
}


def is_dcp_folder(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is a DCP checkpoint folder (one holding a ``.metadata`` file)."""
    return Path(path).is_dir() and (Path(path) / METADATA_FILE).is_file()


class MetadataUnpickler(pickle.Unpickler):
    """Unpickles a DCP ``.metadata`` file; any class or function outside the allow-list is refused.

    Args:
        file: the open ``.metadata`` file.
        source: the file's path, named in the error.
    """

    def __init__(self, file: io.BufferedIOBase, source: str) -> None:
        super().__init__(file)
        self.source = source

    def find_class(self, module: str, name: str) -> Any:
        if module == "torch" and isinstance(getattr(torch, name, None), torch.dtype):
            return getattr(torch, name)  # dtypes pickle as the global `torch.<name>`
        if (module, name) in _ALLOWED_CLASSES:
            return super().find_class(module, name)
        if name == "getattr" and module in ("builtins", "__builtin__"):  # "__builtin__": protocols 0-2
            return self.enum_member
        raise UnsafeInputError(
            f"{self.source}: refused to load `{module}.{name}`: a distributed-checkpoint .metadata file holds only "
            "torch's checkpoint metadata; this one asks to run other code"
        )

    def enum_member(self, owner: Any, name: Any) -> enum.Enum:
        """What ``getattr`` may do in a ``.metadata`` file: look up a member of an allowed enum by name.

        Early Python 3.11 releases (Debian 12's 3.11.2 among them; 3.10, 3.11.7, 3.12 and 3.13 do not) pickle an
        enum member as ``getattr(EnumClass, "NAME")``; torch's ``TensorProperties.memory_format`` is one. The class
        itself came through :meth:`find_class`, so it is an allowed one; anything but one of its members is refused.
        """
        is_enum = isinstance(owner, type) and issubclass(owner, enum.Enum)
        if is_enum and isinstance(name, str) and name in owner.__members__:
            return owner[name]
        raise UnsafeInputError(
            f"{self.source}: refused `getattr({getattr(owner, '__name__', type(owner).__name__)}, {name!r})`: in a "
            "distributed-checkpoint .metadata file getattr only names a member of torch's metadata enums"
        )

    def persistent_load(self, pid: Any) -> Any:
        raise UnsafeInputError(f"{self.source}: refused a persistent id in a distributed-checkpoint .metadata file")


def read_metadata(folder: str | os.PathLike[str]) -> Metadata:
    """The :class:`Metadata` of a DCP folder, checked: only torch's metadata classes, storage files inside."""
    folder = Path(folder)
    path = folder / METADATA_FILE
    with open(path, "rb") as file:
        try:
            metadata = MetadataUnpickler(file, str(path)).load()
        except UnsafeInputError:
            raise
        except Exception as err:  # truncated or malformed pickle: name the file
            raise UnsafeInputError(f"{path}: not a readable distributed-checkpoint .metadata file ({err})") from err
    if not isinstance(metadata, Metadata):
        raise UnsafeInputError(f"{path}: holds a {type(metadata).__name__}, not distributed-checkpoint Metadata")
    _check_storage_paths(folder, metadata, str(path))
    return metadata


def _check_storage_paths(folder: Path, metadata: Metadata, source: str) -> None:
    """Every ``relative_path`` in ``storage_data`` names a file inside ``folder`` (no ``..``, absolute, symlink out)."""
    if not isinstance(metadata.state_dict_metadata, dict) or not isinstance(metadata.storage_data, dict):
        raise UnsafeInputError(f"{source}: not a distributed-checkpoint .metadata written by torch's file writer")
    root = folder.resolve()
    for index, info in metadata.storage_data.items():
        if not isinstance(index, MetadataIndex) or not isinstance(info, _StorageInfo):
            raise UnsafeInputError(f"{source}: storage entry {index!r} is not torch's (MetadataIndex, _StorageInfo)")
        if not all(isinstance(value, int) and value >= 0 for value in (info.offset, info.length)):
            raise UnsafeInputError(f"{source}: storage entry {index.fqn!r} has no valid offset and length")
        relative = info.relative_path
        if not isinstance(relative, str) or os.path.isabs(relative) or ".." in Path(relative).parts:
            raise UnsafeInputError(f"{source}: storage file {relative!r} is not a path inside {folder}")
        target = (folder / relative).resolve()
        if root not in target.parents:
            raise UnsafeInputError(f"{source}: storage file {relative!r} resolves to {target}, outside {folder}")


class SafeFileSystemReader(FileSystemReader):
    """torch's :class:`FileSystemReader`, given the ``.metadata`` already read by :func:`read_metadata`.

    (torch turns any error of ``read_metadata`` into a bare ``AssertionError`` and retries per-rank files: the
    metadata is read and checked before torch is called, so the refusal keeps its message.)
    """

    def __init__(self, path: str | os.PathLike[str], metadata: Metadata) -> None:
        super().__init__(path)
        self.metadata = metadata

    def read_metadata(self) -> Metadata:
        if getattr(self.metadata, "storage_meta", None) is None:
            self.metadata.storage_meta = StorageMeta()
        self.metadata.storage_meta.load_id = self.load_id
        return self.metadata


class _WeightsOnlyPlanner(_EmptyStateDictLoadPlanner):
    """Rebuilds the whole state dict from the metadata; non-tensor items are read with ``weights_only=True``."""

    def __init__(self, source: str) -> None:
        super().__init__()
        self.source = source

    def load_bytes(self, read_item: Any, value: io.BytesIO) -> None:
        loaded = _weights_only_load(value.getvalue(), f"{self.source}: item {read_item.dest_index.fqn!r}")
        if self.flatten_state_dict:  # as DefaultLoadPlanner.load_bytes, without its weights_only=False
            set_element(self.original_state_dict, self.mappings[read_item.dest_index.fqn], loaded)
        else:
            self.state_dict[read_item.dest_index.fqn] = loaded


def _weights_only_load(payload: bytes, source: str) -> Any:
    try:
        return torch.load(io.BytesIO(payload), map_location="cpu", weights_only=True)
    except Exception as err:  # weights_only refuses code with UnpicklingError; anything unreadable is refused too
        raise UnsafeInputError(f"{source}: not plain data (refused to unpickle it: {err})") from err


def load_dcp(folder: str | os.PathLike[str]) -> dict[str, Any]:
    """The full (unsharded) state dict of a DCP folder, in one process, no process group needed."""
    metadata = check_dcp(folder)
    state: dict[str, Any] = {}
    # torch's own dcp_to_torch_save calls this private loader too: the public `load` drops keys it was not given.
    reader, planner = SafeFileSystemReader(folder, metadata), _WeightsOnlyPlanner(str(folder))
    _load_state_dict(state, storage_reader=reader, planner=planner, no_dist=True)
    return state


def check_dcp(folder: str | os.PathLike[str]) -> Metadata:
    """Refuse a DCP folder before torch's own reader (plain pickle) touches it: checks ``.metadata`` and every
    non-tensor item (what torch would unpickle with ``weights_only=False``). Returns the checked metadata."""
    folder = Path(folder)
    metadata = read_metadata(folder)
    for index, info in (metadata.storage_data or {}).items():
        if not isinstance(metadata.state_dict_metadata.get(index.fqn), BytesStorageMetadata):
            continue
        source = f"{folder / info.relative_path}: item {index.fqn!r}"
        if getattr(info, "transform_descriptors", None):  # compressed or otherwise transformed: cannot be checked
            raise UnsafeInputError(f"{source}: transformed ({info.transform_descriptors}); lvlm cannot check it")
        with open(folder / info.relative_path, "rb") as file:
            file.seek(info.offset)
            _weights_only_load(file.read(info.length), source)
    return metadata
