"""Each rank of two reads its rows of the LLM and allocates little more than the shards it keeps.

One process plays rank 1 of two (torch's fake process group: loading shards communicates nothing), so
rank 1's shards are shorter than rank 0's wherever a dimension is odd and its embedding rows run past the
checkpoint's (the placeholder tokens). The real two-process load is `benchmarks/fsdp_host_memory.py`
(tests/test_benchmarks.py), which also measures resident memory."""

from __future__ import annotations

import functools

import pytest
import torch
import torch.distributed as dist
from safetensors.torch import load_file
from torch.distributed.device_mesh import init_device_mesh
from torch.testing._internal.distributed.fake_pg import FakeStore
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves
from transformers import LlamaConfig, LlamaForCausalLM

from lvlm import VideoLLaVA
from lvlm.models.language_model import LanguageModel
from lvlm.training.meta_init import PREFIX, load_llm_shards, meta_llm
from lvlm.training.sharding import shard_model
from tests.models.tiny import text_dict
from tests.training.test_meta_init import towers


class FreshBytes(TorchDispatchMode):
    """Bytes of the new storages that torch ops create (views and in-place ops create none)."""

    def __init__(self) -> None:
        super().__init__()
        self.nbytes = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        inputs = {t.untyped_storage().data_ptr() for t in tree_leaves((args, kwargs)) if _plain(t)}
        fresh = {t.untyped_storage().data_ptr(): t for t in tree_leaves(out) if _plain(t)}
        self.nbytes += sum(t.untyped_storage().nbytes() for ptr, t in fresh.items() if ptr not in inputs)
        return out


def _plain(t) -> bool:
    return type(t) is torch.Tensor and not t.is_meta


@pytest.fixture(scope="module")
def odd_checkpoint(tmp_path_factory):
    directory = tmp_path_factory.mktemp("odd-llm")
    torch.manual_seed(0)
    config = {k: v for k, v in text_dict().items() if k != "model_type"} | {"vocab_size": 97, "intermediate_size": 97}
    LlamaForCausalLM(LlamaConfig(**config)).to(torch.bfloat16).save_pretrained(directory)
    return directory


def test_the_short_rank_reads_its_rows_into_the_memory_it_keeps(odd_checkpoint):
    llm, directory = meta_llm(functools.partial(LanguageModel, pretrained=str(odd_checkpoint), torch_dtype="float32"))
    model = VideoLLaVA.build(llm, towers())
    rank = 1  # one rank per process: a DTensor's mesh keeps the first fake rank's coordinate (rank 0 is even)
    dist.init_process_group("fake", store=FakeStore(), rank=rank, world_size=2)
    try:
        shard_model(model, init_device_mesh("cpu", (2,)))
        with FreshBytes() as made:
            load_llm_shards(model, directory)
    finally:
        dist.destroy_process_group()
    whole = load_file(directory / "model.safetensors")
    shards = {name: param.to_local() for name, param in model.named_parameters() if name.startswith(PREFIX)}
    short = [name for name, shard in shards.items() if len(shard) < -(-model.get_parameter(name).shape[0] // 2)]
    assert len(short) == 6  # 97 MLP rows (2 layers x gate, up) and 97 + 2 placeholder embedding rows (in, out)
    for name, shard in shards.items():
        rows = whole[name.removeprefix(PREFIX)].float()
        start = rank * -(-model.get_parameter(name).shape[0] // 2)
        expected = rows[start : start + len(shard)]
        added = len(shard) - len(expected)  # placeholder rows: the checkpoint's mean row
        expected = torch.cat([expected, rows.mean(0).expand(added, *rows.shape[1:])])
        assert torch.equal(shard, expected), name
    # The shards kept, one scratch buffer for the rows FSDP2 copies into its padded shards and one staging buffer
    # for the bf16 -> fp32 reads; reading whole rows in the file's dtype, converting them and then padding them
    # made 2.8 times the shards kept.
    kept = sum(shard.untyped_storage().nbytes() for shard in shards.values())
    assert made.nbytes <= 1.5 * kept, (made.nbytes, kept)
