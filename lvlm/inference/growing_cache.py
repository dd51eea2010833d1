"""A KV cache whose layers grow in place: a decoding step writes its keys and values into spare room.

transformers' ``DynamicLayer`` appends with ``torch.cat``, copying the whole cache of a layer at every step;
for a batch of 8 rows on a CPU that copy takes half of a decoding step. :class:`GrowingLayer` keeps its keys
and values as views of a buffer with room to spare (doubled when full), so a step copies only its own
tokens. Anything that replaces the views (rows dropped, padding trimmed) costs one copy at the next step.

Legend: ``b`` rows, ``h`` KV heads, ``l`` cached positions, ``d`` head width.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from transformers import DynamicCache, PretrainedConfig
from transformers.cache_utils import DynamicLayer

MIN_ROOM = 64


class GrowingLayer(DynamicLayer):
    """A ``DynamicLayer`` whose ``keys``/``values`` ``[b, h, l, d]`` are views of larger buffers."""

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args, **kwargs):
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
        if self.keys.numel() == 0:
            self.keys, self.values = key_states, value_states
            return self.keys, self.values
        self.keys = _append(self.keys, key_states, self, "_key_buffer")
        self.values = _append(self.values, value_states, self, "_value_buffer")
        return self.keys, self.values


def _append(cached: torch.Tensor, new: torch.Tensor, layer: GrowingLayer, name: str) -> torch.Tensor:
    length, added = cached.shape[2], new.shape[2]
    buffer = getattr(layer, name, None)
    in_place = (
        buffer is not None
        and cached.data_ptr() == buffer.data_ptr()
        and cached.shape[:2] == buffer.shape[:2]
        and cached.stride() == buffer.stride()
        and length + added <= buffer.shape[2]
    )
    if not in_place:
        b, h, _, d = cached.shape
        buffer = cached.new_empty(b, h, max(2 * (length + added), MIN_ROOM), d)
        buffer[:, :, :length] = cached
        setattr(layer, name, buffer)
    buffer[:, :, length : length + added] = new
    return buffer[:, :, : length + added]


def growing_cache(config: PretrainedConfig) -> DynamicCache:
    """An empty ``DynamicCache`` of :class:`GrowingLayer` for ``config``."""
    cache = DynamicCache(config=config)
    cache.layers = [GrowingLayer() for _ in cache.layers]
    return cache


def stack_right_aligned(caches: Sequence[DynamicCache], config: PretrainedConfig) -> DynamicCache:
    """The rows of several caches in one, each padded with zeros on the left to the longest (one copy per layer).

    Positions are aligned on the right, as left-padded prompts are; the caller's attention mask hides the padding.
    """
    merged = growing_cache(config)
    length = max(cache.get_seq_length() for cache in caches)
    for index, layer in enumerate(merged.layers):
        parts = [cache.layers[index] for cache in caches]
        layer.lazy_initialization(parts[0].keys, parts[0].values)
        layer._key_buffer = _stack(length, [part.keys for part in parts])
        layer._value_buffer = _stack(length, [part.values for part in parts])
        layer.keys, layer.values = layer._key_buffer[:, :, :length], layer._value_buffer[:, :, :length]
    return merged


def _stack(length: int, tensors: Sequence[torch.Tensor]) -> torch.Tensor:
    """``[b_i, h, l_i, d]`` tensors → one buffer ``[sum b_i, h, room, d]``, each ending at position ``length``."""
    rows, heads, width = sum(t.shape[0] for t in tensors), tensors[0].shape[1], tensors[0].shape[3]
    buffer = tensors[0].new_zeros(rows, heads, max(2 * length, MIN_ROOM), width)
    start = 0
    for tensor in tensors:
        buffer[start : start + tensor.shape[0], :, length - tensor.shape[2] : length] = tensor
        start += tensor.shape[0]
    return buffer
