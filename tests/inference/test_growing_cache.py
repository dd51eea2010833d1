"""The growing KV cache holds exactly what concatenation would, and appends a step without copying the cache."""

from __future__ import annotations

import torch

from lvlm.inference.growing_cache import GrowingLayer


def test_appends_in_place_and_matches_concatenation():
    torch.manual_seed(0)
    layer = GrowingLayer()
    prefill = torch.randn(3, 2, 5, 4), torch.randn(3, 2, 5, 4)
    layer.update(*prefill)
    expected_keys, expected_values = prefill
    pointers = set()
    for _ in range(40):
        step = torch.randn(3, 2, 1, 4), torch.randn(3, 2, 1, 4)
        keys, values = layer.update(*step)
        expected_keys, expected_values = (
            torch.cat([expected_keys, step[0]], 2),
            torch.cat([expected_values, step[1]], 2),
        )
        assert torch.equal(keys, expected_keys) and torch.equal(values, expected_values)
        pointers.add(keys.data_ptr())
    assert len(pointers) == 1  # one buffer (64 positions) held all 45: no step copied the cache
    assert layer.get_seq_length() == 45


def test_rows_dropped_and_columns_trimmed_keep_the_right_values():
    layer = GrowingLayer()
    keys = torch.arange(3 * 1 * 6 * 2, dtype=torch.float).reshape(3, 1, 6, 2)
    layer.update(keys, keys + 100)
    layer.update(torch.ones(3, 1, 1, 2), torch.ones(3, 1, 1, 2))
    layer.batch_select_indices(torch.tensor([0, 2]))
    layer.keys, layer.values = layer.keys[:, :, 2:], layer.values[:, :, 2:]  # as RunningBatch trims padding
    new_keys, _ = layer.update(torch.full((2, 1, 1, 2), 7.0), torch.full((2, 1, 1, 2), 7.0))
    expected = torch.cat([keys[[0, 2], :, 2:], torch.ones(2, 1, 1, 2), torch.full((2, 1, 1, 2), 7.0)], dim=2)
    assert torch.equal(new_keys, expected)
