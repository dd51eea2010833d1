"""A sharded checkpoint's ``.metadata`` written by a Python that pickles enum members by name.

Early Python 3.11 releases (Debian 12's 3.11.2 among them; not 3.10, 3.11.7, 3.12 or 3.13) pickle an enum member
as ``getattr(EnumClass, "NAME")``, so the metadata torch writes there calls ``builtins.getattr``. lvlm's metadata
unpickler reads such a file as any other (its ``getattr`` only looks up members of the allowed enums) and still
refuses every other use of ``getattr``. The files here are written on any Python by a pickler that does what
those Pythons do.
"""

from __future__ import annotations

import enum
import io
import pickle
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.distributed.checkpoint as dcp
from torch.distributed.checkpoint.metadata import _MEM_FORMAT_ENCODING, Metadata

from lvlm.core.errors import UnsafeInputError
from lvlm.models.checkpoints.dcp import METADATA_FILE, load_dcp, read_metadata


class ByName(pickle.Pickler):
    """Pickles enum members as ``getattr(cls, name)``, and ``lookups`` (object -> (owner, name)) likewise."""

    def __init__(self, file: io.BytesIO, lookups: dict[int, tuple[Any, str]] | None = None) -> None:
        super().__init__(file)
        self.lookups = lookups or {}

    def reducer_override(self, obj: Any) -> Any:
        if isinstance(obj, enum.Enum):
            return getattr, (type(obj), obj.name)
        if id(obj) in self.lookups:
            return getattr, self.lookups[id(obj)]
        return NotImplemented


def sharded_checkpoint(folder: Path) -> dict[str, torch.Tensor]:
    state = {"weight": torch.arange(6.0).view(2, 3), "bias": torch.ones(3)}
    dcp.save({"state_dict": state}, checkpoint_id=folder, no_dist=True)
    return state


def rewrite_metadata(folder: Path, lookups: dict[int, tuple[Any, str]] | None = None, extra: Any = None) -> bytes:
    with open(folder / METADATA_FILE, "rb") as file:
        metadata = pickle.load(file)  # written by torch in this test
    if extra is not None:
        metadata.planner_data = extra
    buffer = io.BytesIO()
    ByName(buffer, lookups).dump(metadata)
    (folder / METADATA_FILE).write_bytes(buffer.getvalue())
    return buffer.getvalue()


def test_enum_members_pickled_by_name_are_read(tmp_path):
    state = sharded_checkpoint(tmp_path)
    written = rewrite_metadata(tmp_path)
    assert b"getattr" in written and b"_MEM_FORMAT_ENCODING" in written  # what Python 3.11.2 writes
    metadata = read_metadata(tmp_path)
    assert isinstance(metadata, Metadata)
    formats = {entry.properties.memory_format for entry in metadata.state_dict_metadata.values()}
    assert formats == {torch.contiguous_format}  # decoded from _MEM_FORMAT_ENCODING, looked up by name
    loaded = load_dcp(tmp_path)["state_dict"]
    assert all(torch.equal(loaded[key], value) for key, value in state.items())


class NotMetadata:
    """Stands for what a crafted file would reach through getattr."""


@pytest.mark.parametrize(
    ("owner", "name"),
    [
        (Metadata, "__init__"),  # an allowed class, but not an enum
        (_MEM_FORMAT_ENCODING, "__class__"),  # an allowed enum, but not one of its members
        (_MEM_FORMAT_ENCODING, "_missing_"),
    ],
)
def test_any_other_getattr_is_refused(tmp_path, owner, name):
    sharded_checkpoint(tmp_path)
    marker = NotMetadata()
    rewrite_metadata(tmp_path, {id(marker): (owner, name)}, extra=marker)
    with pytest.raises(UnsafeInputError, match=r"refused `getattr\("):
        read_metadata(tmp_path)
