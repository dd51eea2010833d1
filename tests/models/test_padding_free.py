"""A right-padded batch run without its padding (one packed row) gives the padded batch's loss and gradients."""

from __future__ import annotations

import pytest
import torch

from lvlm.models.packed_attention import PACKED_SDPA
from lvlm.models.padding_free import can_drop_padding, pack_padded_rows
from tests.models.test_packed_forward import build, packed
from tests.models.test_supervised_loss import batch


def loss_grads_logits(model, inputs: dict, drop_padding: bool) -> tuple[float, dict[str, torch.Tensor], torch.Tensor]:
    model.zero_grad()
    out = model(**inputs, use_cache=False, loss_only=True, drop_padding=drop_padding)
    out.loss.backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    return out.loss.item(), grads, out.logits


@pytest.mark.parametrize("lora", [False, True])
def test_same_loss_and_gradients_as_the_padded_batch(lora):
    model = build(PACKED_SDPA, lora)
    inputs = batch(model)
    expected_loss, expected, _ = loss_grads_logits(model, inputs, drop_padding=False)
    got_loss, got, logits = loss_grads_logits(model, inputs, drop_padding=True)
    supervised = int((inputs["labels"] != -100).sum())
    assert logits.shape[:2] == (1, supervised)  # one row per supervised token: the padding was dropped
    assert abs(got_loss - expected_loss) <= 1e-5
    assert got.keys() == expected.keys() and "projector.0.weight" in got
    assert any("lora_" in name for name in got) == lora
    for name in expected:
        torch.testing.assert_close(got[name], expected[name], rtol=0, atol=1e-5, msg=name)


def test_a_packed_batch_is_left_as_it_is():
    model = build(PACKED_SDPA, lora=False)
    padded = batch(model)
    expected_loss, expected, _ = loss_grads_logits(model, padded, drop_padding=False)
    got_loss, got, _ = loss_grads_logits(model, packed(padded), drop_padding=True)
    assert abs(got_loss - expected_loss) <= 1e-5
    for name in expected:
        torch.testing.assert_close(got[name], expected[name], rtol=0, atol=1e-5, msg=name)


@pytest.mark.parametrize("case", ["sdpa", "left padded", "target on a pad", "no padding"])
def test_the_padded_batch_runs_as_it_is_where_dropping_would_change_or_cost(case):
    model = build("sdpa" if case == "sdpa" else PACKED_SDPA, lora=False)
    inputs = batch(model)
    if case == "left padded":
        inputs["attention_mask"] = inputs["attention_mask"].flip(1)
    elif case == "target on a pad":
        inputs["labels"][2, -1] = 5
    elif case == "no padding":
        inputs = {k: v[:1] if k in ("input_ids", "attention_mask", "labels") else v for k, v in inputs.items()}
        inputs.pop("images")
    with torch.no_grad():
        kept = model(**inputs, use_cache=False, loss_only=True, drop_padding=True)
        padded = model(**inputs, use_cache=False, loss_only=True)
    assert kept.logits.shape == padded.logits.shape and kept.logits.shape[0] == inputs["input_ids"].shape[0]
    assert kept.loss.item() == padded.loss.item()


def test_can_drop_padding_only_for_right_padding_without_targets_on_pads():
    mask = torch.tensor([[1, 1, 1], [1, 1, 0]])
    labels = torch.tensor([[-100, 4, 5], [-100, 6, -100]])
    assert can_drop_padding(mask, labels, {"use_cache": False}, PACKED_SDPA)
    assert not can_drop_padding(mask, labels, {}, "sdpa")
    assert not can_drop_padding(mask, labels, {"use_cache": True}, PACKED_SDPA)
    assert not can_drop_padding(mask, labels, {"position_ids": torch.arange(3)[None]}, PACKED_SDPA)
    assert not can_drop_padding(mask.flip(1), labels, {}, PACKED_SDPA)
    assert not can_drop_padding(torch.ones(2, 3, dtype=torch.long), labels, {}, PACKED_SDPA)
    assert not can_drop_padding(mask, torch.tensor([[-100, 4, 5], [-100, 6, 7]]), {}, PACKED_SDPA)


def test_packed_row_layout():
    embeds = torch.arange(6.0).view(2, 3, 1)
    mask = torch.tensor([[1, 1, 1], [1, 1, 0]])
    labels = torch.tensor([[3, 4, 5], [7, 6, -100]])
    row = pack_padded_rows(embeds, mask, labels)
    assert row.embeds.flatten().tolist() == [0.0, 1.0, 2.0, 3.0, 4.0]
    assert row.labels.tolist() == [[-100, 4, 5, -100, 6]]  # a sample's first token is no target
    assert row.position_ids.tolist() == [[0, 1, 2, 0, 1]]
    assert labels[1, 0] == 7  # the caller's labels are not changed
