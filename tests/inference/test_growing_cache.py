"""The growing KV cache holds exactly what concatenation would; steps, joins, leaving rows and trims copy no row
that stays."""

from __future__ import annotations

import torch
from transformers import DynamicCache

from lvlm.inference.growing_cache import GrowingLayer, join_right_aligned, keep_rows, leaving_order, trim_left


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


def _cache(keys: torch.Tensor) -> DynamicCache:
    """A one-layer cache of :class:`GrowingLayer` holding ``keys`` (values: ``keys + 100``)."""
    cache = DynamicCache()
    cache.layers = [GrowingLayer()]
    cache.layers[0].update(keys, keys + 100)
    return cache


def _right_aligned(tensors: list[torch.Tensor]) -> torch.Tensor:
    """``[b_i, h, l_i, d]`` tensors stacked, zero-padded on the left to the longest (what the mask hides)."""
    length = max(t.shape[2] for t in tensors)
    return torch.cat([torch.nn.functional.pad(t, (0, 0, length - t.shape[2], 0)) for t in tensors])


def test_rows_join_leave_and_trim_without_moving_the_rows_that_stay():
    torch.manual_seed(0)
    first = torch.randn(3, 2, 5, 4)
    cache = _cache(first)
    layer = cache.layers[0]
    layer.reserve(8, left=0, right=1)  # as RunningBatch makes room for a batch of 8
    step = torch.randn(3, 2, 1, 4)
    reserved = layer._buffers[0]
    layer.update(step, step + 100)
    assert layer._buffers[0] is reserved  # the step was written into the room
    expected = torch.cat([first, step], 2)

    wider = torch.randn(2, 2, 9, 4)  # joining prompts longer than the batch so far: its rows get left padding
    join_right_aligned(cache, _cache(wider), max_rows=8)
    expected = _right_aligned([expected, wider])
    assert torch.equal(layer.keys[:, :, -6:], expected[:, :, -6:])  # the first rows' own columns, unmoved
    assert torch.equal(layer.keys[3:], wider) and torch.equal(layer.values[3:], wider + 100)
    buffer = layer._buffers[0]  # a new one, with room on the left for the next wider prompt

    narrower = torch.randn(1, 2, 2, 4)  # a short prompt joins: its row is padded, the others are not touched
    join_right_aligned(cache, _cache(narrower), max_rows=8)
    expected = _right_aligned([expected, narrower])
    assert torch.equal(layer.keys[:5], expected[:5]) and torch.equal(layer.keys[5, :, -2:], narrower[0])

    order = leaving_order(6, [1, 3])  # rows 1 and 3 leave: rows 4 and 5 take their places
    assert order == [0, 4, 2, 5]
    keep_rows(cache, order)
    expected = expected[order]
    assert torch.equal(layer.keys[:, :, -6:], expected[:, :, -6:]) and layer.keys.shape[0] == 4
    assert torch.equal(layer.values[:, :, -2:], expected[:, :, -2:] + 100)

    trim_left(cache, 3)
    step = torch.randn(4, 2, 1, 4)
    keys, values = layer.update(step, step + 100)
    expected = torch.cat([expected[:, :, 3:], step], 2)
    assert keys.shape == expected.shape and torch.equal(keys[:, :, -7:], expected[:, :, -7:])
    assert torch.equal(values[:, :, -1:], step + 100)
    assert layer._buffers[0] is buffer  # the short join, the leaving rows, the trim and the step made no new buffer


def test_leaving_order_moves_only_the_last_rows():
    assert leaving_order(5, []) == [0, 1, 2, 3, 4]
    assert leaving_order(5, [4]) == [0, 1, 2, 3]
    assert leaving_order(5, [0, 4]) == [3, 1, 2]
    assert leaving_order(3, [0, 1, 2]) == []
