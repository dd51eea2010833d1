"""Tiny checkpoints written with the original key names: LanguageBind tower directories and a
Video-LLaVA-7B-style directory (``pytorch_model.bin``, ``model.image_tower.image_tower.*``, ...)."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from tests.models.tiny import text_dict, vision_dict

FRAMES = 4


def lb_vision_config(**overrides) -> dict:
    return vision_dict(hidden_act="gelu", add_time_attn=False, num_frames=1, lora_r=0) | overrides


def random_tower_state(config: dict, temporal: bool, generator: torch.Generator) -> dict[str, torch.Tensor]:
    """Weights named as in LanguageBind's ``vision_model`` (without the prefix)."""
    d, inner, size, patch = (
        config["hidden_size"],
        config["intermediate_size"],
        config["image_size"],
        config["patch_size"],
    )

    def rand(*shape):
        return torch.randn(*shape, generator=generator) * 0.2

    state = {
        "embeddings.class_embedding": rand(d),
        "embeddings.patch_embedding.weight": rand(d, 3, patch, patch),
        "embeddings.position_embedding.weight": rand((size // patch) ** 2 + 1, d),
        "pre_layrnorm.weight": 1 + rand(d),
        "pre_layrnorm.bias": rand(d),
        "post_layernorm.weight": 1 + rand(d),
        "post_layernorm.bias": rand(d),
    }
    for i in range(config["num_hidden_layers"]):
        p = f"encoder.layers.{i}."
        attns = ["self_attn"] + (["temporal_attn"] if temporal else [])
        for attn in attns:
            for proj in ("q_proj", "k_proj", "v_proj", "out_proj"):
                state[f"{p}{attn}.{proj}.weight"] = rand(d, d)
                state[f"{p}{attn}.{proj}.bias"] = rand(d)
        norms = ["layer_norm1", "layer_norm2"] + (["temporal_layer_norm1"] if temporal else [])
        for norm in norms:
            state[f"{p}{norm}.weight"] = 1 + rand(d)
            state[f"{p}{norm}.bias"] = rand(d)
        state[f"{p}mlp.fc1.weight"], state[f"{p}mlp.fc1.bias"] = rand(inner, d), rand(inner)
        state[f"{p}mlp.fc2.weight"], state[f"{p}mlp.fc2.bias"] = rand(d, inner), rand(d)
        if temporal:
            state[f"{p}temporal_embedding"] = rand(1, config["num_frames"], d)
    return state


def write_languagebind_dir(path: Path, kind: str, seed: int, lora: bool = False) -> dict[str, torch.Tensor]:
    """A ``LanguageBind_Image``/``_Video_merge``-style directory; returns the tower's (merged) weights."""
    generator = torch.Generator().manual_seed(seed)
    temporal = kind == "video"
    vision = lb_vision_config(add_time_attn=temporal, num_frames=FRAMES if temporal else 1)
    tower = random_tower_state(vision, temporal, generator)
    state = {f"vision_model.{k}": v for k, v in tower.items()}
    state["text_model.embeddings.token_embedding.weight"] = torch.randn(10, 8, generator=generator)
    state["logit_scale"] = torch.tensor(1.0)
    if lora:  # peft-wrapped encoder as LanguageBindImage stores it when lora_r > 0
        vision |= {"lora_r": 2, "lora_alpha": 4}
        wrapped = {}
        for key, value in state.items():
            if key.startswith("vision_model.encoder.layers."):
                key = key.replace("vision_model.encoder.", "vision_model.encoder.base_model.model.")
                if ".self_attn.q_proj.weight" in key:
                    base = key[: -len(".weight")]
                    wrapped[f"{base}.lora_A.default.weight"] = torch.randn(2, value.shape[1], generator=generator)
                    wrapped[f"{base}.lora_B.default.weight"] = torch.randn(value.shape[0], 2, generator=generator)
                    key = f"{base}.base_layer.weight"
            wrapped[key] = value
        state = wrapped
    path.mkdir(parents=True, exist_ok=True)
    model_type = "LanguageBindVideo" if temporal else "LanguageBindImage"
    config = {"model_type": model_type, "vision_config": vision, "text_config": {"hidden_size": 8}}
    (path / "config.json").write_text(json.dumps(config))
    torch.save(state, path / "pytorch_model.bin")
    return tower


def write_original_dir(path: Path, image_dir: Path, video_dir: Path, seed: int = 3) -> dict[str, torch.Tensor]:
    """A Video-LLaVA-7B-style directory naming its towers by (local) path; returns the full state dict."""
    generator = torch.Generator().manual_seed(seed)
    image = random_tower_state(lb_vision_config(), False, generator)
    video = random_tower_state(lb_vision_config(add_time_attn=True, num_frames=FRAMES), True, generator)
    text = text_dict()
    d, llm_d, vocab = vision_dict()["hidden_size"], text["hidden_size"], text["vocab_size"]
    inner, kv = text["intermediate_size"], text["num_key_value_heads"] * (llm_d // text["num_attention_heads"])
    state = {f"model.image_tower.image_tower.{k}": v for k, v in image.items()}
    state |= {f"model.video_tower.video_tower.{k}": v for k, v in video.items()}
    state |= {
        "model.mm_projector.0.weight": torch.randn(llm_d, d, generator=generator) * 0.2,
        "model.mm_projector.0.bias": torch.randn(llm_d, generator=generator) * 0.2,
        "model.mm_projector.2.weight": torch.randn(llm_d, llm_d, generator=generator) * 0.2,
        "model.mm_projector.2.bias": torch.randn(llm_d, generator=generator) * 0.2,
        "model.embed_tokens.weight": torch.randn(vocab, llm_d, generator=generator),
        "model.norm.weight": torch.ones(llm_d),
        "lm_head.weight": torch.randn(vocab, llm_d, generator=generator) * 0.2,
    }
    for i in range(text["num_hidden_layers"]):
        p = f"model.layers.{i}."
        shapes = {
            "self_attn.q_proj": (llm_d, llm_d), "self_attn.k_proj": (kv, llm_d), "self_attn.v_proj": (kv, llm_d),
            "self_attn.o_proj": (llm_d, llm_d), "mlp.gate_proj": (inner, llm_d), "mlp.up_proj": (inner, llm_d),
            "mlp.down_proj": (llm_d, inner),
        }  # fmt: skip
        for name, shape in shapes.items():
            state[f"{p}{name}.weight"] = torch.randn(*shape, generator=generator) * 0.2
        state[f"{p}input_layernorm.weight"] = torch.ones(llm_d)
        state[f"{p}post_attention_layernorm.weight"] = torch.ones(llm_d)
        state[f"{p}self_attn.rotary_emb.inv_freq"] = torch.ones(4)  # old checkpoints carry it; ignored
    config = {k: v for k, v in text.items() if k != "model_type"} | {
        "model_type": "llava",
        "architectures": ["LlavaLlamaForCausalLM"],
        "mm_image_tower": str(image_dir),
        "mm_video_tower": str(video_dir),
        "mm_projector_type": "mlp2x_gelu",
        "mm_hidden_size": d,
        "mm_vision_select_layer": -2,
        "mm_vision_select_feature": "patch",
        "image_aspect_ratio": "pad",
        "mm_use_im_start_end": False,
        "tokenizer_model_max_length": 3072,
    }
    path.mkdir(parents=True, exist_ok=True)
    (path / "config.json").write_text(json.dumps(config))
    torch.save(state, path / "pytorch_model.bin")
    return state
