"""Flags → exactly the right parameters require grad; LoRA lands on LLM modules only."""

from __future__ import annotations

import pytest
import torch

from lvlm.training.module import LVLMModule
from lvlm.training.trainability import parameter_counts, trainability_table
from tests.training.tiny import instantiate_module, tiny_model_args


def build(tokenizer_dir, **flags) -> LVLMModule:
    torch.manual_seed(0)
    module = instantiate_module(tiny_model_args(tokenizer_dir, **flags))
    module.configure_model()
    return module


def trainable(module: LVLMModule) -> set[str]:
    return {name for name, p in module.model.named_parameters() if p.requires_grad}


def names(module: LVLMModule, prefix: str) -> set[str]:
    return {name for name, _ in module.model.named_parameters() if name.startswith(prefix)}


def test_stage1_trains_the_projector_only(tokenizer_dir):
    module = build(tokenizer_dir, optimisation={"train_projector": True, "train_llm": False})
    assert trainable(module) == names(module, "projector.")
    assert not module.model.towers["image"].training and module.model.towers["video"].frozen


def test_stage2_trains_projector_and_whole_llm(tokenizer_dir):
    module = build(tokenizer_dir, optimisation={"train_projector": True, "train_llm": True})
    assert trainable(module) == names(module, "projector.") | names(module, "llm.")
    assert "llm.causal_lm.model.embed_tokens.weight" in trainable(module)


def test_lora_trains_adapters_on_llm_modules_and_projector(tokenizer_dir):
    module = build(tokenizer_dir, optimisation={"lora": {"r": 4, "alpha": 8, "target_modules": ["q_proj", "v_proj"]}})
    lora = {n for n, _ in module.model.named_parameters() if ".lora_A." in n or ".lora_B." in n}
    # the towers have q_proj/v_proj too: none of them got an adapter
    assert lora and all(n.startswith("llm.causal_lm.model.layers.") for n in lora)
    assert len(lora) == 2 * 2 * 2  # 2 layers x (q, v) x (A, B)
    assert trainable(module) == lora | names(module, "projector.")


def test_train_vision_unfreezes_the_towers(tokenizer_dir):
    module = build(tokenizer_dir, optimisation={"train_vision": True})
    assert trainable(module) == names(module, "projector.") | names(module, "towers.")
    module.train()
    assert module.model.towers["image"].training


def test_lora_with_train_llm_is_refused(tokenizer_dir):
    with pytest.raises(ValueError, match="train_llm"):
        instantiate_module(tiny_model_args(tokenizer_dir, optimisation={"train_llm": True, "lora": {"r": 4}}))


def test_startup_table_counts_every_parameter(tokenizer_dir):
    module = build(tokenizer_dir)
    counts = parameter_counts(module.model)
    assert counts["projector"][1] == 0 and counts["llm"][0] == 0 and counts["towers.image"][0] == 0
    assert sum(t + f for t, f in counts.values()) == sum(p.numel() for p in module.model.parameters())
    table = trainability_table(counts)
    assert "projector       trainable" in table and "towers.video    frozen" in table


def test_tokenizer_and_model_agree_on_placeholders(tokenizer_dir):
    module = build(tokenizer_dir)
    ids = module.tokenizer.convert_tokens_to_ids(["<image>", "<video>"])
    assert module.model.placeholder_ids == ids
    image, video = module.modalities["image"], module.modalities["video"]
    assert (image.num_tokens(1), video.num_tokens(1)) == (4, 5)  # CLS kept per frame
    assert image.tower_facts.preprocessing.size == 28 and video.uses_frames


def test_a_modality_can_be_dropped_and_another_added(tokenizer_dir):
    args = tiny_model_args(tokenizer_dir)
    video = args["parts"]["modalities"].pop("video")
    args["parts"]["modalities"]["clip"] = video
    module = instantiate_module(args)
    assert list(module.modalities) == ["image", "clip"]
    assert [m.token for m in module.modalities.values()] == ["<image>", "<clip>"]
    module.configure_model()
    assert list(module.model.towers) == ["image", "clip"] and module.model.modalities["clip"].input_name == "clips"
