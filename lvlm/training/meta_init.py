"""The LLM under FSDP2 without any rank holding all of it in host memory.

`LanguageModel(pretrained=...)` loads the whole checkpoint on every rank: about 27 GB per rank for a 7B model in
fp32, times 8 ranks per node. Under FSDP2, `LVLMModule.configure_model` instead builds the LLM with its
parameters on the meta device (buffers such as rotary frequencies stay real), shards the model, and then fills
each rank's shard from the checkpoint's safetensors files, reading only the bytes of the rows it keeps: FSDP2
shards every parameter along dim 0, and a row range of a row-major tensor is one contiguous byte range. The
files are read with `seek` + `readinto`, not memory-mapped, because mapped pages that were touched count in a
process's resident memory. A rank allocates only what it keeps: rows in the parameter's dtype are read straight
into its shard, others through one staging buffer, and a shard that is copied anyway (FSDP2 pads a shorter
rank's; one for a GPU) through one scratch buffer, so freed temporaries leave no holes in the C heap that stay
resident (docs/performance.md, FSDP2 host memory). Rows the checkpoint lacks (added placeholder tokens) get the
mean of its rows, as `LanguageModel.add_tokens` gives them; LoRA adapters (built on meta with the LLM) get peft's
initialisation.

Checkpoints without safetensors files (`pytorch_model*.bin`) are loaded the ordinary way, on every rank.
"""

from __future__ import annotations

import functools
import json
import logging
import math
import struct
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.utilities import rank_zero_info
from torch import nn

log = logging.getLogger(__name__)

PREFIX = "llm.causal_lm."
DTYPES = {"F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16, "F64": torch.float64}


class Scratch:
    """One reusable byte buffer, viewed as tensors of any shape and dtype; grows to the largest asked for.

    Loading reads shards one after another; reading the temporary ones into a single buffer instead of a fresh
    allocation each keeps the C allocator's heap free of holes that it fills with later shards and then cannot
    give back (the holes count in resident memory)."""

    def __init__(self) -> None:
        self.buffer = torch.empty(0, dtype=torch.uint8)

    def view(self, shape: list[int], dtype: torch.dtype) -> torch.Tensor:
        nbytes = math.prod(shape) * dtype.itemsize
        if nbytes > self.buffer.numel():
            self.buffer = torch.empty(0, dtype=torch.uint8)  # free the old one first
            self.buffer = torch.empty(nbytes, dtype=torch.uint8)
        return self.buffer[:nbytes].view(dtype).view(shape)

    def holds(self, tensor: torch.Tensor) -> bool:
        return tensor.untyped_storage().data_ptr() == self.buffer.untyped_storage().data_ptr()


class SafetensorsRows:
    """Row ranges of the tensors in a directory's safetensors files, read without memory-mapping them."""

    def __init__(self, directory: Path, chunk_bytes: int = 8 * 2**20) -> None:
        index = directory / "model.safetensors.index.json"
        files = sorted(set(json.loads(index.read_text())["weight_map"].values())) if index.exists() else []
        files = files or [p.name for p in sorted(directory.glob("*.safetensors"))]
        self.entries: dict[str, tuple[Path, int, dict[str, Any]]] = {}
        for name in files:
            path = directory / name
            with open(path, "rb") as f:
                (size,) = struct.unpack("<Q", f.read(8))
                header = json.loads(f.read(size))
            for key, entry in header.items():
                if key != "__metadata__":
                    self.entries[key] = (path, 8 + size, entry)
        self.chunk_bytes, self.staging = chunk_bytes, Scratch()

    def __contains__(self, key: str) -> bool:
        return key in self.entries

    def shape(self, key: str) -> list[int]:
        return list(self.entries[key][2]["shape"])

    def rows(self, key: str, start: int, stop: int) -> torch.Tensor:
        """Rows `[start, stop)` of tensor `key` (dim 0), in the file's dtype."""
        entry = self.entries[key][2]
        out = torch.empty([stop - start, *entry["shape"][1:]], dtype=DTYPES[entry["dtype"]])
        self.read_into(key, start, out)
        return out

    def read_into(self, key: str, start: int, out: torch.Tensor) -> None:
        """Fill `out` (contiguous, any dtype) with rows `[start, start + len(out))` of `key`.

        Rows in the file's dtype are read straight into `out`; others pass through the staging buffer
        (`chunk_bytes`, one row at least) and are converted into `out`: no whole-shard temporary."""
        if len(out) == 0:
            return
        with self._at_row(key, start) as f:
            if out.dtype == self._dtype(key):
                _read_exactly(f, out)
                return
            for first, part in self._chunks(key, len(out)):
                _read_exactly(f, part)
                out[first : first + len(part)].copy_(part)

    def mean_row(self, key: str, chunk: int = 4096) -> torch.Tensor:
        """The mean of all rows of `key`, in float32, summed `chunk` rows at a time in the staging buffer.

        With 4096-row chunks the result has matched the whole tensor's `.float().mean(0)` bit for bit (torch sums
        in blocks that such chunks do not split), so added rows equal `LanguageModel.add_tokens`' rows."""
        count, row = self.shape(key)[0], self.shape(key)[1:]
        total = torch.zeros(row, dtype=torch.float32)
        with self._at_row(key, 0) as f:
            for first in range(0, count, chunk):
                part = self.staging.view([min(chunk, count - first), *row], self._dtype(key))
                _read_exactly(f, part)
                total += part.sum(0, dtype=torch.float32)
        return total / count

    def _dtype(self, key: str) -> torch.dtype:
        return DTYPES[self.entries[key][2]["dtype"]]

    def _at_row(self, key: str, start: int) -> Any:
        path, base, entry = self.entries[key]
        f = open(path, "rb", buffering=0)  # noqa: SIM115 (returned to a with statement)
        f.seek(base + entry["data_offsets"][0] + start * math.prod(entry["shape"][1:]) * self._dtype(key).itemsize)
        return f

    def _chunks(self, key: str, count: int) -> Iterator[tuple[int, torch.Tensor]]:
        """`(first row, staging view)` pairs covering `count` rows, `chunk_bytes` (one row at least) each."""
        row = self.shape(key)[1:]
        step = max(1, self.chunk_bytes // (math.prod(row) * self._dtype(key).itemsize))
        for first in range(0, count, step):
            yield first, self.staging.view([min(step, count - first), *row], self._dtype(key))


def _read_exactly(f: Any, out: torch.Tensor) -> None:
    """Read `out.nbytes` bytes from the raw file `f` into `out` (a raw read may return fewer bytes than asked)."""
    view, done = memoryview(out.view(torch.uint8).reshape(-1).numpy()), 0
    while done < len(view):
        got = f.readinto(view[done:])
        if not got:
            raise EOFError(f"{f.name} ends {len(view) - done} bytes early")
        done += got


def meta_llm(factory: Callable[[], nn.Module]) -> tuple[nn.Module, Path] | None:
    """The LLM of a `LanguageModel` factory with `pretrained` (`functools.partial`, as jsonargparse gives
    `model.llm`), built with its parameters on meta, and its checkpoint directory; None when the factory is
    anything else or the checkpoint has no safetensors files."""
    from accelerate import init_empty_weights
    from transformers import AutoConfig

    from lvlm.models.io.hub import resolve_checkpoint_dir
    from lvlm.models.language_model import LanguageModel

    if not isinstance(factory, functools.partial):
        return None
    # jsonargparse's factory is a partial over an instantiator with the class among its arguments
    cls = next((a for a in reversed(factory.args) if isinstance(a, type)), factory.func)
    args = {k: v for k, v in factory.keywords.items() if v is not None or k not in ("config", "pretrained")}
    if cls is not LanguageModel or not args.get("pretrained"):
        return None
    args.pop("config", None)
    directory = Path(resolve_checkpoint_dir(args.pop("pretrained")))
    if not any(directory.glob("*.safetensors")):
        log.warning("%s has no safetensors files: every rank loads the whole LLM", directory)
        return None
    config = AutoConfig.from_pretrained(directory, trust_remote_code=False)
    with init_empty_weights(include_buffers=False):
        llm = LanguageModel(config=config, **args)
    return llm, directory


@torch.no_grad()
def load_llm_shards(model: nn.Module, directory: Path) -> int:
    """Fill the meta (sharded) LLM parameters of `model` from `directory`; returns how many were filled."""
    from torch.distributed.tensor import DTensor
    from torch.distributed.tensor._utils import compute_local_shape_and_global_offset

    reader, tied = SafetensorsRows(directory), getattr(model.llm.config, "tie_word_embeddings", False)
    scratch, filled = Scratch(), 0
    for name, param in list(model.named_parameters()):
        if not param.is_meta or not isinstance(param, DTensor):
            continue
        shape, offset = compute_local_shape_and_global_offset(param.shape, param.device_mesh, param.placements)
        # A shard that is copied anyway is read into the scratch buffer, not a fresh allocation: one for another
        # device, and one shorter than the longest rank's (FSDP2 keeps shards padded to that and copies a
        # shorter one into a padded buffer of its own when it is assigned).
        mesh, device = param.device_mesh, param.device_mesh.device_type
        ranks = math.prod(mesh.size(i) for i, placement in enumerate(param.placements) if placement.is_shard())
        copied = device != "cpu" or shape[0] < -(-param.shape[0] // ranks)
        local = scratch.view(shape, param.dtype) if copied else torch.empty(shape, dtype=param.dtype)
        if (key := _checkpoint_key(name, tied, reader)) is not None:
            _fill_rows(reader, key, offset[0], local)
        else:  # a LoRA adapter
            local.zero_()
            if ".lora_A." in name:
                nn.init.kaiming_uniform_(local, a=math.sqrt(5))  # peft's default for A; B stays zero
        owner, _, leaf = name.rpartition(".")
        module = model.get_submodule(owner)
        _assign(module, leaf, param, local.to(device))
        if scratch.holds(getattr(module, leaf).to_local()):  # FSDP2 kept it as it is: it gets memory of its own
            _assign(module, leaf, param, local.clone())
        filled += 1
    rank_zero_info(f"lvlm: the LLM was built on meta; each rank read its shards of {filled} tensors from {directory}")
    return filled


def _assign(module: nn.Module, leaf: str, meta: nn.Parameter, local: torch.Tensor) -> None:
    """Make `local` the shard of `module`'s parameter `leaf` (a meta DTensor like `meta`).

    One parameter at a time, into the module that owns it: FSDP2's post-load hook takes (or pads) the shard
    right away, so the scratch buffer is free again before the next read."""
    from torch.distributed.tensor import DTensor

    sharded = DTensor.from_local(local, meta.device_mesh, meta.placements, shape=meta.shape, stride=meta.stride())
    new = nn.Parameter(sharded, requires_grad=meta.requires_grad)
    module.load_state_dict({leaf: new}, strict=False, assign=True)


def _checkpoint_key(name: str, tied: bool, reader: SafetensorsRows) -> str | None:
    if ".lora_" in name or not name.startswith(PREFIX):
        return None
    key = name.removeprefix(PREFIX).replace("._checkpoint_wrapped_module", "")
    key = key.removeprefix("base_model.model.").replace(".base_layer.", ".")
    if key not in reader and tied and key == "lm_head.weight":
        key = "model.embed_tokens.weight"
    if key not in reader:
        raise KeyError(f"the LLM checkpoint has no tensor {key!r} (for parameter {name!r})")
    return key


def _fill_rows(reader: SafetensorsRows, key: str, start: int, out: torch.Tensor) -> None:
    """Rows `[start, start + len(out))` of `key` into `out`; rows past the checkpoint's (placeholder tokens added
    after it) get its mean row."""
    known = max(0, min(len(out), reader.shape(key)[0] - start))
    reader.read_into(key, start, out[:known])
    if known < len(out):
        out[known:] = reader.mean_row(key).to(out.dtype)
