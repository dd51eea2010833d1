"""Fusion: placement, labels, count errors, mixed batches, text-only rows."""

from __future__ import annotations

import pytest
import torch

from lvlm.models.fusion import IGNORE_INDEX, mask_visual_labels, merge_visual_embeddings

IMG, VID = 90, 91


def test_features_land_in_placeholder_order_across_the_batch():
    ids = torch.tensor([[1, IMG, IMG, 5], [1, 6, IMG, IMG]])
    embeds = torch.zeros(2, 4, 3)
    features = torch.arange(2 * 2 * 3, dtype=torch.float).reshape(2, 2, 3)  # 2 images x 2 tokens
    out = merge_visual_embeddings(embeds, ids, features, IMG)
    assert torch.equal(out[0, 1:3], features[0]) and torch.equal(out[1, 2:4], features[1])
    assert torch.equal(out[0, [0, 3]], torch.zeros(2, 3)) and torch.equal(embeds, torch.zeros(2, 4, 3))


def test_mixed_image_and_video_rows_and_a_text_only_row():
    ids = torch.tensor([[VID, VID, VID, IMG, 7], [3, 4, 5, 6, 7], [IMG, 8, 9, 10, 11]])
    embeds = torch.randn(3, 5, 2)
    video = torch.full((1, 3, 2), 5.0)
    images = torch.stack([torch.full((1, 2), 1.0), torch.full((1, 2), 2.0)])
    out = merge_visual_embeddings(merge_visual_embeddings(embeds, ids, video, VID), ids, images, IMG)
    assert torch.equal(out[0, :3], video[0]) and torch.equal(out[0, 3], images[0, 0])
    assert torch.equal(out[2, 0], images[1, 0])
    assert torch.equal(out[1], embeds[1])  # the text-only row is untouched
    assert torch.equal(out[0, 4], embeds[0, 4])


def test_count_mismatch_states_both_counts():
    ids = torch.tensor([[IMG, IMG, IMG, 1]])
    with pytest.raises(ValueError, match=r"3 placeholder tokens .* but 4 feature vectors \(2 items x 2 tokens\)"):
        merge_visual_embeddings(torch.zeros(1, 4, 2), ids, torch.zeros(2, 2, 2), IMG, "image")


def test_labels_ignored_at_every_visual_position():
    ids = torch.tensor([[1, IMG, VID, 4, 5]])
    labels = torch.tensor([[-100, IMG, VID, 4, 5]])
    assert mask_visual_labels(labels, ids, [IMG, VID]).tolist() == [[-100, IGNORE_INDEX, IGNORE_INDEX, 4, 5]]
