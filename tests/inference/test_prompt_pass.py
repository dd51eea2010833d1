"""The prompt pass that runs the last layer's tail on the last position alone gives the whole pass's logits and
KV cache, for every decoder family lvlm is used with, and leaves the model as it found it."""

from __future__ import annotations

import pytest
import torch

from lvlm.models.generation.kv_cache import RowCache
from lvlm.models.generation.prompt_pass import last_layer_tail, prompt_pass
from lvlm.models.language_model import LanguageModel

WIDTHS = {"vocab_size": 96, "hidden_size": 32, "intermediate_size": 56, "num_hidden_layers": 3}
TOKENS = {"pad_token_id": 0, "bos_token_id": 1, "eos_token_id": 2}  # inside the vocabulary
HEADS = {"num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 8, "max_position_embeddings": 64}
FAMILIES = ["llama", "mistral", "qwen2", "qwen3", "gemma", "gemma3_text", "phi3"]


def tiny_llm(model_type: str) -> LanguageModel:
    torch.manual_seed(0)
    return LanguageModel(config={"model_type": model_type, **WIDTHS, **HEADS, **TOKENS}, torch_dtype="float32").eval()


def left_padded_prompts(width: int) -> dict[str, torch.Tensor]:
    """Two prompts of 11 and 7 positions, the second left-padded."""
    generator = torch.Generator().manual_seed(1)
    mask = torch.ones(2, 11, dtype=torch.long)
    mask[1, :4] = 0
    return {
        "inputs_embeds": torch.randn(2, 11, width, generator=generator),
        "attention_mask": mask,
        "position_ids": (mask.cumsum(-1) - 1).masked_fill(mask == 0, 1),
    }


@pytest.mark.parametrize("model_type", FAMILIES)
@torch.inference_mode()
def test_logits_and_cache_equal_the_whole_pass(model_type):
    llm = tiny_llm(model_type)
    inputs = left_padded_prompts(llm.hidden_size)
    layers = llm.config.num_hidden_layers
    whole_cache, cut_cache = RowCache(layers), RowCache(layers)
    whole = llm(**inputs, cache=whole_cache, use_cache=True, logits_to_keep=1)
    seen: list[torch.Size] = []
    tail = last_layer_tail(llm)
    recorders = [module.register_forward_hook(lambda m, args, out: seen.append(args[0].shape)) for module in tail]
    cut = prompt_pass(llm, inputs.pop("inputs_embeds"), **inputs, cache=cut_cache, use_cache=True)
    for recorder in recorders:
        recorder.remove()
    assert len(tail) == 2 and seen == [torch.Size([2, 1, tail_width]) for tail_width in (_in(tail[0]), _in(tail[1]))]
    assert cut.logits.shape == (2, 1, llm.vocab_size)
    torch.testing.assert_close(cut.logits, whole.logits, rtol=1e-5, atol=1e-5)
    for whole_layer, cut_layer in zip(whole_cache.layers, cut_cache.layers, strict=True):
        assert torch.equal(whole_layer.keys, cut_layer.keys) and torch.equal(whole_layer.values, cut_layer.values)
    assert all(not module._forward_pre_hooks for module in tail)


def _in(module: torch.nn.Module) -> int:
    """The width a tail module takes: the attention's heads x head width, or the model's width."""
    return module.in_features if isinstance(module, torch.nn.Linear) else WIDTHS["hidden_size"]


@torch.inference_mode()
def test_a_one_position_step_and_a_failing_pass_leave_no_cut_behind():
    llm = tiny_llm("llama")
    prompts = left_padded_prompts(llm.hidden_size)
    before = llm(**prompts, use_cache=False).logits  # every position's logits
    step = {"inputs_embeds": torch.randn(2, 1, llm.hidden_size), "use_cache": False}
    torch.testing.assert_close(prompt_pass(llm, **step).logits, llm(**step, logits_to_keep=1).logits)
    with pytest.raises(RuntimeError):
        prompt_pass(llm, torch.randn(2, 5, llm.hidden_size + 1), use_cache=False)
    assert all(not module._forward_pre_hooks for module in last_layer_tail(llm))
    torch.testing.assert_close(llm(**prompts, use_cache=False).logits, before, rtol=0, atol=0)
