"""OpenAI-style CLIP directories load as image towers (the paper's separated-CLIP ablation)."""

from __future__ import annotations

import pytest
import torch
from transformers import CLIPConfig, CLIPModel, CLIPVisionConfig, CLIPVisionModel

from lvlm.models.vision.clip_tower import CLIPVisionTower
from tests.models.tiny import pixels, vision_dict


def test_clip_model_directory(tmp_path):
    torch.manual_seed(0)
    text = {"hidden_size": 16, "intermediate_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2}
    clip = CLIPModel(CLIPConfig(vision_config=vision_dict(), text_config=text, projection_dim=16)).eval()
    clip.save_pretrained(tmp_path)
    tower = CLIPVisionTower(pretrained=str(tmp_path))
    assert tower.component_class() is CLIPVisionTower and tower.config.hidden_act == "quick_gelu"
    images = pixels(2)
    with torch.no_grad():
        expected = clip.vision_model(images, output_hidden_states=True).hidden_states[-2][:, 1:]
        assert (tower(images) - expected).abs().max().item() < 1e-5


def test_clip_vision_model_directory(tmp_path):
    CLIPVisionModel(CLIPVisionConfig(**vision_dict())).save_pretrained(tmp_path)
    tower = CLIPVisionTower(pretrained=str(tmp_path), select_feature="cls_patch")
    assert tower.tokens_per_image == 5


def test_not_a_clip_directory(tmp_path):
    (tmp_path / "config.json").write_text('{"model_type": "llama"}')
    with pytest.raises(ValueError, match="not a CLIP directory"):
        CLIPVisionTower(pretrained=str(tmp_path))
