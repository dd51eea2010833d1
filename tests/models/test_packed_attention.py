"""lvlm's packed attention: per-sample sdpa equals sdpa under transformers' block-diagonal mask (values and
gradients); everything that is not a packed row goes to transformers' sdpa and gives its exact numbers."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from transformers.masking_utils import causal_mask_function, sdpa_mask

from lvlm.models.language_model import LanguageModel
from lvlm.models.packed_attention import (
    PACKED_SDPA,
    is_packed,
    packed_sdpa_attention_forward,
    packed_sdpa_mask,
    sample_bounds,
)
from tests.models.tiny import text_dict

ROWS = [[5, 1, 9, 3], [2, 11, 5]]  # samples per row (one of a single token), 18 and 18 positions


class Attention(nn.Module):
    """What transformers' attention functions read from the module: GQA groups and causality."""

    is_causal = True
    num_key_value_groups = 2


def qkv(requires_grad: bool = True) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    shapes = [(2, 4, 18, 8), (2, 2, 18, 8), (2, 2, 18, 8)]  # [b, h, l, e]; 2 key/value heads (GQA)
    return tuple(torch.randn(s, generator=generator).requires_grad_(requires_grad) for s in shapes)


def positions(rows: list[list[int]]) -> torch.Tensor:
    return torch.stack([torch.cat([torch.arange(n) for n in row]) for row in rows])


def test_sample_bounds_follow_the_position_restarts():
    assert sample_bounds(positions(ROWS), 2) == [[0, 5, 6, 15, 18], [0, 2, 13, 18]]
    assert sample_bounds(torch.arange(6)[None], 2) is None  # unsqueezed, not expanded: one sample per row
    assert is_packed(positions(ROWS), None) and not is_packed(positions(ROWS), torch.ones(2, 18))
    assert not is_packed(torch.arange(6)[None] + 4, None) and not is_packed(None, None)


def test_per_sample_attention_equals_sdpa_under_the_block_diagonal_mask():
    position_ids = positions(ROWS)
    segment = (torch.diff(position_ids, prepend=position_ids[:, :1] - 1) != 1).cumsum(-1)
    dense = sdpa_mask(  # what transformers builds for sdpa from the same restarts
        batch_size=2,
        q_length=18,
        kv_length=18,
        mask_function=lambda b, h, q, k: causal_mask_function(b, h, q, k) & (segment[b, q] == segment[b, k]),
        allow_is_causal_skip=False,
    )
    results = []
    for mask in (dense, None):
        q, k, v = qkv()
        out, _ = packed_sdpa_attention_forward(Attention(), q, k, v, mask, scaling=0.3, position_ids=position_ids)
        out.pow(2).sum().backward()
        results.append((out, q.grad, k.grad, v.grad))
    assert results[0][0].shape == (2, 18, 4, 8)
    for expected, got in zip(*results):
        torch.testing.assert_close(got, expected, rtol=0, atol=1e-5)


def test_without_restarts_it_is_plain_causal_sdpa():
    q, k, v = qkv(requires_grad=False)
    out, _ = packed_sdpa_attention_forward(Attention(), q, k, v, None, position_ids=torch.arange(18)[None])
    expected = torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=True)
    assert torch.equal(out, expected.transpose(1, 2))


@pytest.mark.parametrize(
    "sizes",
    [
        {"attention_mask": torch.tensor([[0, 1, 1, 1], [1, 1, 1, 1]]).bool()},  # padding
        {"kv_length": 7, "kv_offset": 0, "q_offset": 3},  # past tokens in a cache
        {"local_size": 2},  # a sliding window
    ],
)
def test_the_mask_is_transformers_sdpa_mask_but_for_plain_causal_attention(sizes):
    args = {"batch_size": 2, "q_length": 4, "kv_length": 4, "mask_function": causal_mask_function} | sizes
    expected = sdpa_mask(**args)
    assert expected is not None and torch.equal(packed_sdpa_mask(**args), expected)
    assert packed_sdpa_mask(batch_size=2, q_length=4, kv_length=4, mask_function=causal_mask_function) is None


def test_padded_batches_and_cached_decoding_are_sdpa_bit_for_bit():
    models = {}
    for attn in ("sdpa", PACKED_SDPA):
        torch.manual_seed(0)
        models[attn] = LanguageModel(config=text_dict(), attn_implementation=attn).eval()
    ids = torch.tensor([[0, 0, 5, 6, 7, 8], [1, 9, 10, 11, 12, 13]])
    mask = (ids != 0).long()
    with torch.no_grad():
        padded = {a: m.causal_lm(input_ids=ids, attention_mask=mask).logits for a, m in models.items()}
        tokens = {
            a: m.causal_lm.generate(ids, attention_mask=mask, max_new_tokens=5, do_sample=False, pad_token_id=0)
            for a, m in models.items()
        }
    assert torch.equal(padded["sdpa"], padded[PACKED_SDPA])
    assert torch.equal(tokens["sdpa"], tokens[PACKED_SDPA])
