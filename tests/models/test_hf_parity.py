"""lvlm and transformers' VideoLlava compute the same thing on the same weights."""

from __future__ import annotations

import pytest
import torch
from transformers import VideoLlavaForConditionalGeneration

from lvlm import VideoLLaVA
from tests.models.tiny import FRAMES, PAD_ID, pixels, prompt, tiny_hf_model

CASES = {
    "text": ([prompt(5, 6, 7, 8)], {}),
    "image": ([prompt("image", 5, 6, 7)], {"images": pixels(1)}),
    "video": ([prompt("video", 9, 10)], {"videos": pixels(1, FRAMES)}),
    "image+video": ([prompt("video", 11, "image", 12)], {"images": pixels(1), "videos": pixels(1, FRAMES, seed=2)}),
}


def hf_inputs(media: dict) -> dict:
    out = {}
    if "images" in media:
        out["pixel_values"] = media["images"]
    if "videos" in media:
        out["pixel_values_videos"] = media["videos"]
    return out


@pytest.fixture(scope="module")
def hf_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("hf")
    tiny_hf_model().save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def hf_model(hf_dir):
    return VideoLlavaForConditionalGeneration.from_pretrained(hf_dir).eval()


@pytest.fixture(scope="module")
def model(hf_dir):
    return VideoLLaVA.from_pretrained(hf_dir).eval()


@pytest.mark.parametrize("case", list(CASES))
def test_logits_equal_transformers(model, hf_model, case):
    rows, media = CASES[case]
    ids = torch.tensor(rows)
    with torch.no_grad():
        ours = model(ids, **media).logits
        theirs = hf_model(input_ids=ids, **hf_inputs(media)).logits
    assert ours.shape == theirs.shape
    assert (ours - theirs).abs().max().item() <= 1e-5


def padded_batch():
    rows = [prompt("image", 5, 6, 7, 8, 9), prompt("video", 10), prompt(11, 12, 13)]
    length = max(map(len, rows))
    ids = torch.full((3, length), PAD_ID)
    mask = torch.zeros(3, length, dtype=torch.long)
    for i, row in enumerate(rows):
        ids[i, : len(row)] = torch.tensor(row)
        mask[i, : len(row)] = 1
    return ids, mask, {"images": pixels(1), "videos": pixels(1, FRAMES)}


def test_padded_batch_of_three(model, hf_model):
    ids, mask, media = padded_batch()
    labels = ids.masked_fill(mask == 0, -100)
    with torch.no_grad():
        ours = model(ids, attention_mask=mask, labels=labels, full_vocabulary_loss=True, **media)
        theirs = hf_model(
            input_ids=ids, attention_mask=mask, labels=model_labels(model, ids, labels), **hf_inputs(media)
        )
    real = mask.bool()
    assert (ours.logits[real] - theirs.logits[real]).abs().max().item() <= 1e-5
    assert abs(ours.loss.item() - theirs.loss.item()) <= 1e-5


def model_labels(model, ids, labels):
    """transformers takes labels as given; lvlm ignores visual positions itself: give HF the same targets."""
    visual = torch.isin(ids, torch.tensor(model.placeholder_ids))
    return labels.masked_fill(visual, -100)


def test_hf_export_reloads_in_transformers(model, tmp_path):
    model.save_pretrained(tmp_path, layout="hf")
    reloaded = VideoLlavaForConditionalGeneration.from_pretrained(tmp_path).eval()
    for case in CASES:
        rows, media = CASES[case]
        ids = torch.tensor(rows)
        with torch.no_grad():
            ours = model(ids, **media).logits
            theirs = reloaded(input_ids=ids, **hf_inputs(media)).logits
        assert (ours - theirs).abs().max().item() <= 1e-5, case


def test_lvlm_layout_round_trip(model, tmp_path):
    model.save_pretrained(tmp_path)
    reloaded = VideoLLaVA.from_pretrained(tmp_path).eval()
    ids, mask, media = padded_batch()
    with torch.no_grad():
        assert torch.equal(
            model(ids, attention_mask=mask, **media).logits, reloaded(ids, attention_mask=mask, **media).logits
        )


def test_greedy_generation_matches_transformers(model, hf_model):
    ids, mask, media = padded_batch()
    left_ids, left_mask = torch.full_like(ids, PAD_ID), torch.zeros_like(mask)
    for i in range(ids.shape[0]):  # generation wants left padding
        n = int(mask[i].sum())
        left_ids[i, -n:], left_mask[i, -n:] = ids[i, :n], 1
    ours = model.generate(left_ids, attention_mask=left_mask, max_new_tokens=6, pad_token_id=PAD_ID, **media)
    theirs = hf_model.generate(
        input_ids=left_ids,
        attention_mask=left_mask,
        max_new_tokens=6,
        do_sample=False,
        pad_token_id=PAD_ID,
        suppress_tokens=model.placeholder_ids,
        **hf_inputs(media),
    )[:, ids.shape[1] :]
    assert torch.equal(ours, theirs)
