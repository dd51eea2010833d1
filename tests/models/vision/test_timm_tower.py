"""timm towers: MAE ViT-L/16 shapes and intermediate-layer selection through timm's own API."""

from __future__ import annotations

import torch

from lvlm.models.vision.timm_tower import TimmVisionTower


def test_mae_vit_large_shapes():
    # The real architecture (width 1024, 16 heads, 224 px, patch 16) with 3 blocks to stay small.
    tower = TimmVisionTower("vit_large_patch16_224.mae", model_kwargs={"depth": 3})
    assert tower.hidden_size == 1024 and tower.tokens_per_image == 196
    assert tower.preprocessing.size == 224 and tower.preprocessing.mean == (0.485, 0.456, 0.406)
    out = tower(torch.randn(2, 3, 224, 224))
    assert out.shape == (2, 196, 1024)
    assert not any(p.requires_grad for p in tower.parameters()) and not tower.training


def test_selected_block_equals_manual_forward():
    kwargs = {"depth": 4, "embed_dim": 64, "num_heads": 4, "img_size": 32, "patch_size": 8}
    tower = TimmVisionTower("vit_base_patch16_224", select_layer=-2, select_feature="cls_patch", model_kwargs=kwargs)
    vit = tower.vit
    images = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        x = vit.norm_pre(vit._pos_embed(vit.patch_embed(images)))
        for block in vit.blocks[:3]:  # hidden_states[-2] of 4 blocks: output of the third
            x = block(x)
        ours = tower(images)
    assert ours.shape == (2, 17, 64)
    assert torch.allclose(ours, x, atol=1e-6)
    video = torch.randn(1, 2, 3, 32, 32)
    assert tower(video).shape == (1, 2 * 17, 64)


def test_idle_pixels_encode_as_one_item():
    kwargs = {"depth": 2, "embed_dim": 32, "num_heads": 4, "img_size": 32, "patch_size": 8}
    tower = TimmVisionTower("vit_base_patch16_224", model_kwargs=kwargs)
    assert tower(tower.idle_pixels()).shape == (1, tower.tokens_per_image, 32)
