"""transformers' ``video_llava`` layout (``LanguageBind/Video-LLaVA-7B-hf``): read and write.

Both towers are plain CLIP (the ``-hf`` port dropped LanguageBind's temporal attention), the
image tower drops CLS (``vision_feature_select_strategy: default``) and the video tower keeps it. Keys
are accepted in the hub's legacy form (``image_tower.vision_model.*``, ``language_model.model.*``) and
in transformers 5's form (``model.image_tower.*``, ``model.language_model.*``, ``lm_head.*``).

The ``-hf`` vision config has no ``hidden_act``, so CLIPVisionConfig's ``quick_gelu`` applies, while
LanguageBind's own configs say ``gelu``: lvlm keeps whatever each config says.
"""

from __future__ import annotations

import json
import re
import warnings
from pathlib import Path

import torch
from transformers.initialization import no_init_weights

from lvlm.models.checkpoints.parts import ModelParts
from lvlm.models.io.weights import read_state_dict, write_state_dict
from lvlm.models.language_model import LanguageModel
from lvlm.models.projector import MLPGeluProjector
from lvlm.models.recorded_modality import recorded_modality
from lvlm.models.vision.clip_tower import CLIPVisionTower

_TO_LVLM = [
    (r"^(?:model\.)?(image|video)_tower\.(?:vision_model\.)?", r"towers.\1.vit."),
    (r"^(?:model\.)?multi_modal_projector\.linear_1\.", "projector.0."),
    (r"^(?:model\.)?multi_modal_projector\.linear_2\.", "projector.2."),
    (r"^(?:model\.language_model|language_model\.model)\.", "llm.causal_lm.model."),
    (r"^(?:language_model\.)?lm_head\.", "llm.causal_lm.lm_head."),
]


def to_lvlm_keys(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    out = {}
    for key, tensor in state.items():
        for pattern, replacement in _TO_LVLM:
            new, count = re.subn(pattern, replacement, key)
            if count:
                key = new
                break
        out[key] = tensor
    return out


def read_hf(directory: Path, config: dict, torch_dtype: torch.dtype | None = None) -> ModelParts:
    """Components of a transformers ``video_llava`` directory, with its weights renamed to lvlm's."""
    layer = config.get("vision_feature_layer", -2)
    if not isinstance(layer, int):
        raise NotImplementedError(f"{directory}: vision_feature_layer={layer} (several layers) is not supported")
    act = config.get("projector_hidden_act", "gelu")
    if act != "gelu":
        raise NotImplementedError(f"{directory}: projector_hidden_act={act!r}; lvlm's mlp2x_gelu uses exact GELU")
    if not config.get("multimodal_projector_bias", True):
        raise NotImplementedError(f"{directory}: a projector without bias is not supported")
    vision = config.get("vision_config", {})
    strategy = config.get("vision_feature_select_strategy", "default")
    with no_init_weights():
        towers = {
            "image": CLIPVisionTower(vision, layer, "patch" if strategy == "default" else "cls_patch"),
            "video": CLIPVisionTower(vision, layer, "cls_patch"),
        }
        llm = LanguageModel(config=config["text_config"])
        projector = MLPGeluProjector(towers["image"].hidden_size, llm.hidden_size)
    ids = {
        "image": config.get("image_token_index", config.get("image_token_id", 32000)),
        "video": config.get("video_token_index", config.get("video_token_id", 32001)),
    }
    modalities = [recorded_modality(name, towers[name], f"<{name}>", ids[name]) for name in towers]
    state = to_lvlm_keys(read_state_dict(directory))
    return ModelParts(towers, projector, llm, modalities, "llava_v1", {}, state, str(directory), torch_dtype)


def save_hf(model, directory: Path) -> None:
    """Write ``config.json`` + ``model.safetensors`` that ``VideoLlavaForConditionalGeneration`` loads."""
    image, video = _check_hf_compatible(model)
    text_config = model.llm.config.to_dict()
    config = {
        "architectures": ["VideoLlavaForConditionalGeneration"],
        "model_type": "video_llava",
        "image_token_index": model.modalities["image"].token_id,
        "video_token_index": model.modalities["video"].token_id,
        "projector_hidden_act": "gelu",
        "multimodal_projector_bias": True,
        "vision_feature_layer": image.select_layer,
        "vision_feature_select_strategy": "default" if image.select_feature == "patch" else "full",
        "image_seq_length": image.tokens_per_image,
        "video_seq_length": video.tokens_per_frame * getattr(video, "num_frames", 8),
        "vision_config": image.config.to_dict() | {"model_type": "clip_vision_model"},
        "text_config": text_config,
        "tie_word_embeddings": text_config.get("tie_word_embeddings", False),
        "pad_token_id": text_config.get("pad_token_id"),
    }
    for key in ("_name_or_path", "transformers_version", "architectures"):
        config["vision_config"].pop(key, None)
        config["text_config"].pop(key, None)
    (directory / "config.json").write_text(json.dumps(config, indent=2, default=str))
    rules = [
        ("towers.image.vit.", "image_tower.vision_model."),
        ("towers.video.vit.", "video_tower.vision_model."),
        ("projector.0.", "multi_modal_projector.linear_1."),
        ("projector.2.", "multi_modal_projector.linear_2."),
        ("llm.causal_lm.model.", "language_model.model."),
        ("llm.causal_lm.lm_head.", "language_model.lm_head."),
    ]
    state = {}
    for key, tensor in model.state_dict().items():
        if key.startswith("towers.video.vit.encoder.layers.") and ".temporal_" in key:
            continue
        for prefix, replacement in rules:
            if key.startswith(prefix):
                state[replacement + key[len(prefix) :]] = tensor
                break
    write_state_dict(state, directory)


def _check_hf_compatible(model):
    if set(model.towers) != {"image", "video"}:
        raise ValueError(
            f"the hf layout holds exactly an image and a video tower, this model has {sorted(model.towers)}"
        )
    image, video = model.towers["image"], model.towers["video"]
    for name, tower in (("image", image), ("video", video)):
        if not isinstance(tower, CLIPVisionTower):
            raise ValueError(f"the hf layout holds CLIP towers only; the {name} tower is {type(tower).__name__}")
    if not isinstance(model.projector, MLPGeluProjector) or model.projector.depth != 2:
        raise ValueError(f"the hf layout holds an mlp2x_gelu projector, not {type(model.projector).__name__}")
    shape = ("hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads", "image_size", "patch_size")
    differ = [f for f in shape if getattr(image.config, f) != getattr(video.config, f)]
    if differ:
        raise ValueError(f"the hf layout has one vision_config for both towers; they differ in {differ}")
    if image.config.hidden_act != video.config.hidden_act:
        warnings.warn(
            f"hf layout: one vision_config for both towers; the video tower's hidden_act {video.config.hidden_act!r} "
            f"is replaced by the image tower's {image.config.hidden_act!r}",
            stacklevel=3,
        )
    if video.select_feature != "cls_patch" or video.select_layer != image.select_layer:
        warnings.warn("hf layout: the video tower's feature selection is not representable and changes", stacklevel=3)
    if getattr(video, "temporal_attention", False):
        warnings.warn(
            "hf layout cannot hold LanguageBind's temporal attention: temporal_attn, temporal_layer_norm1 and "
            "temporal_embedding are dropped, so transformers will encode video frames independently "
            "(like the -hf port)",
            stacklevel=3,
        )
    return image, video
