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


def growing_cache(config: PretrainedConfig, pairs: Sequence[tuple[torch.Tensor, torch.Tensor]] = ()) -> DynamicCache:
    """A ``DynamicCache`` of :class:`GrowingLayer` for ``config``, filled with ``(keys, values)`` per layer if given."""
    cache = DynamicCache(config=config)
    cache.layers = [GrowingLayer() for _ in cache.layers]
    for layer, (keys, values) in zip(cache.layers, pairs, strict=False):
        layer.update(keys, values)
    return cache
