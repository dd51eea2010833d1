"""The data side's slots come from the towers, read on the meta device (no weights)."""

from __future__ import annotations

import pytest

from lvlm.training.media_probe import media_slots, placeholder_tokens

MAE = {
    "class_path": "lvlm.models.vision.timm_tower.TimmVisionTower",
    "init_args": {"model_name": "vit_large_patch16_224.mae", "pretrained": False},
}


def test_mae_ablation_changes_token_count_and_normalisation():
    (slot,) = media_slots({"image": MAE}, {"image": "<image>"}, image_mode="pad")
    assert (slot["tokens_per_item"], slot["size"], slot["image_mode"]) == (196, 224, "pad")
    assert slot["mean"] == pytest.approx([0.485, 0.456, 0.406])  # ImageNet's, not CLIP's


def test_placeholder_tokens_default_and_custom():
    towers = {"image": {}, "video": {}, "depth": {}}
    assert placeholder_tokens(towers, None) == {"image": "<image>", "video": "<video>", "depth": "<depth>"}
    assert placeholder_tokens(towers, {"depth": "<d>"})["depth"] == "<d>"
    with pytest.raises(ValueError, match="thermal"):
        placeholder_tokens(towers, {"thermal": "<t>"})
