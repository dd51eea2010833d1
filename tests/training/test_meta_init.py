"""The LLM built on meta and filled shard by shard equals the ordinarily loaded one (FSDP2 over one gloo rank here;
two ranks with uneven rows: `benchmarks/fsdp_host_memory.py` in tests/test_benchmarks.py)."""

from __future__ import annotations

import functools

import pytest
import torch
import torch.distributed as dist
from safetensors.torch import load_file
from torch.distributed.device_mesh import init_device_mesh
from transformers import LlamaConfig, LlamaForCausalLM

from lvlm import VideoLLaVA
from lvlm.models.language_model import LanguageModel
from lvlm.models.vision.clip_tower import CLIPVisionTower
from lvlm.training.lora import LoRASettings, add_lora
from lvlm.training.meta_init import SafetensorsRows, load_llm_shards, meta_llm
from lvlm.training.sharding import apply_activation_checkpointing, shard_model
from tests.models.tiny import text_dict, vision_dict


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    directory = tmp_path_factory.mktemp("llm")
    torch.manual_seed(0)
    config = {k: v for k, v in text_dict().items() if k != "model_type"}
    LlamaForCausalLM(LlamaConfig(**config)).to(torch.bfloat16).save_pretrained(directory)
    return directory


def towers():
    torch.manual_seed(1)
    return {"image": CLIPVisionTower(vision_dict(), -2, "patch"), "video": CLIPVisionTower(vision_dict(), -2)}


def test_rows_are_read_without_mapping_the_file(checkpoint):
    tensors, key = load_file(checkpoint / "model.safetensors"), "model.embed_tokens.weight"
    reader = SafetensorsRows(checkpoint, chunk_bytes=7 * 48 * 2)  # 7 bf16 rows of 48 per staged chunk
    assert torch.equal(reader.rows(key, 10, 33), tensors[key][10:33]) and reader.rows(key, 5, 5).shape == (0, 48)
    torch.testing.assert_close(reader.mean_row(key, chunk=7), tensors[key].float().mean(0))
    converted = torch.empty(23, 48, dtype=torch.float32)  # another dtype: through the staging buffer, in chunks
    reader.read_into(key, 10, converted)
    assert torch.equal(converted, tensors[key][10:33].float())


@pytest.mark.parametrize("lora", [False, True])
def test_meta_build_and_shard_reads_equal_the_whole_load(checkpoint, lora):
    spec = functools.partial(LanguageModel, pretrained=str(checkpoint), torch_dtype="float32")
    expected = VideoLLaVA.build(LanguageModel(pretrained=str(checkpoint), torch_dtype="float32"), towers())
    llm, directory = meta_llm(spec)
    assert llm.causal_lm.model.embed_tokens.weight.is_meta and not llm.causal_lm.model.rotary_emb.inv_freq.is_meta
    model = VideoLLaVA.build(llm, towers())
    if lora:
        add_lora(model.llm.causal_lm, LoRASettings(r=4, alpha=8, dropout=0.0, target_modules=["q_proj"]))
    apply_activation_checkpointing(model)
    dist.init_process_group("gloo", store=dist.HashStore(), rank=0, world_size=1)
    try:
        shard_model(model, init_device_mesh("cpu", (1,)))
        filled = load_llm_shards(model, directory)
        got = {k: v.full_tensor() for k, v in model.state_dict().items()}
        ids = torch.tensor([[1, 5, 6, 7]])
        with torch.no_grad():
            logits = model(input_ids=ids).logits
    finally:
        dist.destroy_process_group()
    assert not any(t.is_meta for t in got.values())
    reference = expected.state_dict()
    lora_keys = [k for k in got if "lora_" in k]
    assert filled == sum(1 for k in got if k.startswith("llm.")) and bool(lora_keys) == lora
    for key, value in got.items():
        if "lora_B" in key:
            assert not value.any()
        elif "lora_A" in key:
            assert value.abs().max() > 0
        else:
            plain = key.replace("base_model.model.", "").replace(".base_layer.", ".")
            torch.testing.assert_close(value, reference[plain], rtol=0, atol=0, msg=key)
    with torch.no_grad():  # LoRA starts with B = 0: the output is the base model's
        torch.testing.assert_close(logits, expected(input_ids=ids).logits)
