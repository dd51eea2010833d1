"""The LM head only where a target is predicted: the same loss and gradients as the full-sequence loss."""

from __future__ import annotations

import pytest
import torch

from lvlm import VideoLLaVA
from lvlm.models.language_model import LanguageModel
from lvlm.models.supervised_loss import loss_at_positions, supervised_positions
from lvlm.models.vision.clip_tower import CLIPVisionTower
from tests.models.tiny import FRAMES, PAD_ID, pixels, text_dict, vision_dict


@pytest.fixture(scope="module")
def model() -> VideoLLaVA:
    torch.manual_seed(0)
    towers = {
        "image": CLIPVisionTower(vision_dict(), -2, "patch"),
        "video": CLIPVisionTower(vision_dict(), -2, "cls_patch"),
    }
    return VideoLLaVA.build(LanguageModel(config=text_dict()), towers)


def batch(model: VideoLLaVA) -> dict[str, torch.Tensor]:
    """Three right-padded rows (video, image, text only) whose answers sit at different positions."""
    image, video = model.modalities["image"].token_id, model.modalities["video"].token_id
    rows = [
        [1, 5] + [video] * (5 * FRAMES) + [7, 8, 9, 10],
        [1, 5] + [image] * 4 + [11, 12, 13, 14, 15, 16],
        [1, 20, 21, 22, 23, 24, 25],
    ]
    answers = [(-3, None), (-4, -1), (-2, None)]  # each row's supervised span, [start, end)
    length = max(map(len, rows))
    ids = torch.full((3, length), PAD_ID)
    labels = torch.full((3, length), -100)
    mask = torch.zeros(3, length, dtype=torch.long)
    for i, (row, (start, end)) in enumerate(zip(rows, answers)):
        ids[i, : len(row)], mask[i, : len(row)] = torch.tensor(row), 1
        span = torch.tensor(row)[start:end]
        labels[i, len(row) + start : len(row) + start + len(span)] = span
    return {
        "input_ids": ids,
        "attention_mask": mask,
        "labels": labels,
        "images": pixels(1),
        "videos": pixels(1, FRAMES),
    }


def test_positions_predict_a_target_in_some_row():
    labels = torch.tensor([[-100, -100, 5, 6, -100], [-100, 7, -100, -100, -100]])
    assert supervised_positions(labels).tolist() == [0, 1, 2]


def test_same_loss_and_logits_at_the_kept_positions(model):
    inputs = batch(model)
    with torch.no_grad():
        full = model(**inputs)
        kept = model(**inputs, loss_only=True)
    positions = supervised_positions(inputs["labels"])
    assert kept.logits.shape == (3, len(positions), full.logits.shape[-1])
    assert len(positions) < inputs["input_ids"].shape[1]  # the video's visual positions are skipped
    assert torch.allclose(kept.logits, full.logits[:, positions], atol=1e-6)
    assert abs(kept.loss.item() - full.loss.item()) <= 1e-6


def test_same_gradients(model):
    inputs = batch(model)
    grads = []
    for loss_only in (False, True):
        model.zero_grad()
        model(**inputs, loss_only=loss_only).loss.backward()
        grads.append({n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None})
    assert grads[0].keys() == grads[1].keys() and "projector.0.weight" in grads[0]
    for name in grads[0]:
        assert torch.allclose(grads[0][name], grads[1][name], atol=1e-6, rtol=1e-5), name


@pytest.mark.parametrize("excluded", [[], [9, 10]])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("chunk_tokens", [1, 3, 1024])
def test_the_chunked_loss_is_one_cross_entropy_over_all_rows(chunk_tokens, dtype, excluded):
    """Any chunk size gives the loss and logit gradient of one float32 cross-entropy (placeholder rows excluded)."""
    torch.manual_seed(0)
    logits = torch.randn(2, 5, 11).to(dtype).requires_grad_()
    before = logits.detach().clone()
    labels = torch.tensor([[-100, 3, 4, -100, -100, 6], [-100, -100, 8, 1, 2, -100]])
    got = loss_at_positions(logits, labels, torch.arange(5), excluded_ids=excluded, chunk_tokens=chunk_tokens)
    scores = logits.float().index_fill(-1, torch.tensor(excluded, dtype=torch.long), float("-inf"))
    expected = torch.nn.functional.cross_entropy(scores.flatten(0, 1), labels[:, 1:].flatten(), ignore_index=-100)
    assert got.dtype == torch.float32 and torch.equal(logits, before)  # the caller's logits are left as they are
    torch.testing.assert_close(got, expected, rtol=1e-6, atol=1e-6)
    (got_grad,) = torch.autograd.grad(got * 3, logits)
    (expected_grad,) = torch.autograd.grad(expected * 3, logits)
    assert got_grad[..., excluded].eq(0).all()  # excluded rows get no gradient
    torch.testing.assert_close(got_grad, expected_grad, rtol=0, atol=1e-6 if dtype == torch.float32 else 2e-2)


def test_no_supervised_token_gives_nan_with_a_gradient():
    logits = torch.randn(1, 0, 11, requires_grad=True)
    loss = loss_at_positions(logits, torch.full((1, 4), -100), torch.arange(0))
    assert loss.isnan() and loss.requires_grad
