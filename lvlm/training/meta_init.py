"""The LLM under FSDP2 without any rank holding all of it in host memory.

`LanguageModel(pretrained=...)` loads the whole checkpoint on every rank: about 27 GB per rank for a 7B model in
fp32, times 8 ranks per node. Under FSDP2, `LVLMModule.configure_model` instead builds the LLM with its
parameters on the meta device (buffers such as rotary frequencies stay real), shards the model, and then fills
each rank's shard from the checkpoint's safetensors files, reading only the bytes of the rows it keeps: FSDP2
shards every parameter along dim 0, and a row range of a row-major tensor is one contiguous byte range. The
files are read with `seek` + `readinto`, not memory-mapped, because mapped pages that were touched count in a
process's resident memory. Rows the checkpoint lacks (added placeholder tokens) get the mean of its rows, as
`LanguageModel.add_tokens` gives them; LoRA adapters (built on meta with the LLM) get peft's initialisation.

Checkpoints without safetensors files (`pytorch_model*.bin`) are loaded the ordinary way, on every rank.
"""

from __future__ import annotations

import functools
import json
import logging
import math
import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.utilities import rank_zero_info
from torch import nn

log = logging.getLogger(__name__)

PREFIX = "llm.causal_lm."
DTYPES = {"F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16, "F64": torch.float64}


class SafetensorsRows:
    """Row ranges of the tensors in a directory's safetensors files, read without memory-mapping them."""

    def __init__(self, directory: Path) -> None:
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

    def __contains__(self, key: str) -> bool:
        return key in self.entries

    def shape(self, key: str) -> list[int]:
        return list(self.entries[key][2]["shape"])

    def rows(self, key: str, start: int, stop: int) -> torch.Tensor:
        """Rows `[start, stop)` of tensor `key` (dim 0), in the file's dtype."""
        path, base, entry = self.entries[key]
        dtype, shape = DTYPES[entry["dtype"]], entry["shape"]
        row_bytes = math.prod(shape[1:]) * dtype.itemsize
        out = torch.empty([stop - start, *shape[1:]], dtype=dtype)
        if stop > start:
            with open(path, "rb", buffering=0) as f:
                f.seek(base + entry["data_offsets"][0] + start * row_bytes)
                f.readinto(memoryview(out.view(torch.uint8).reshape(-1).numpy()))
        return out

    def mean_row(self, key: str, chunk: int = 4096) -> torch.Tensor:
        """The mean of all rows of `key`, in float32, read `chunk` rows at a time."""
        total, count = None, self.shape(key)[0]
        for start in range(0, count, chunk):
            part = self.rows(key, start, min(count, start + chunk)).float().sum(0)
            total = part if total is None else total + part
        return total / count


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
    filled = 0
    for name, param in list(model.named_parameters()):
        if not param.is_meta or not isinstance(param, DTensor):
            continue
        shape, offset = compute_local_shape_and_global_offset(param.shape, param.device_mesh, param.placements)
        start, stop = offset[0], offset[0] + shape[0]
        local = _local_rows(reader, _checkpoint_key(name, tied, reader), start, stop, param.shape, param.dtype)
        if local is None:  # a LoRA adapter
            local = torch.zeros(shape, dtype=param.dtype)
            if ".lora_A." in name:
                nn.init.kaiming_uniform_(local, a=math.sqrt(5))  # peft's default for A; B stays zero
        local = local.to(param.device_mesh.device_type)
        sharded = DTensor.from_local(
            local, param.device_mesh, param.placements, shape=param.shape, stride=param.stride()
        )
        # One parameter at a time, into the module that owns it: FSDP2's post-load hook re-reads (and pads) the
        # shard right away, so the unpadded rows are freed before the next read and the peak stays one shard.
        owner, _, leaf = name.rpartition(".")
        new = nn.Parameter(sharded, requires_grad=param.requires_grad)
        model.get_submodule(owner).load_state_dict({leaf: new}, strict=False, assign=True)
        filled += 1
    rank_zero_info(f"lvlm: the LLM was built on meta; each rank read its shards of {filled} tensors from {directory}")
    return filled


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


def _local_rows(reader, key, start, stop, shape, dtype) -> torch.Tensor | None:
    if key is None:
        return None
    known = reader.shape(key)[0]
    rows = reader.rows(key, min(start, known), min(stop, known)).to(dtype)
    if stop > known:  # rows added after the checkpoint (placeholder tokens): the mean row
        mean = reader.mean_row(key).to(dtype)
        rows = torch.cat([rows, mean.expand(stop - max(start, known), *shape[1:])])
    return rows
