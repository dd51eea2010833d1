"""A KV cache whose layers live in buffers with room: steps, joins, leaving rows and trimming copy little.

transformers' ``DynamicLayer`` appends with ``torch.cat``, copying the whole cache of a layer at every step;
for a batch of 8 rows on a CPU that copy takes half of a decoding step. A :class:`GrowingLayer` keeps its keys
and values as the window ``[:rows, :, start:end]`` of larger buffers (room for more rows, and for more positions
on both sides), so that

- a decoding step writes only its own column (:meth:`GrowingLayer.update`; the buffer doubles when full),
- joining rows are written into free rows, right-aligned with the others (:func:`join_right_aligned`; only a
  prompt longer than the room on the left makes a new buffer),
- a row that leaves is overwritten by the last row (:func:`keep_rows`; the batch reorders its rows to match),
- padding columns no row needs are cut by moving ``start`` (:func:`trim_left`),

none of which copies the rows that stay. Anything else that replaces ``keys``/``values`` (transformers'
``batch_select_indices``) costs one copy at the next update. Room is left uninitialised (no memory is written
for it) and is written before the window covers it; columns of the window outside a row's own positions hold
zeros or stale keys of an earlier row (always finite, so that a masked position contributes exactly 0), and
the caller's attention mask hides them.

Legend: ``b`` rows, ``h`` KV heads, ``l`` cached positions, ``d`` head width.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from transformers import DynamicCache, PretrainedConfig
from transformers.cache_utils import DynamicLayer

MIN_ROOM = 64


class GrowingLayer(DynamicLayer):
    """A ``DynamicLayer`` whose ``keys``/``values`` ``[b, h, l, d]`` are windows of larger buffers."""

    _buffers: tuple[torch.Tensor, torch.Tensor] | None = None  # [rows room, h, columns room, d] each
    _start = _end = 0

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args, **kwargs):
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
        if self.keys.numel() == 0:
            self.keys, self.values = key_states, value_states
            return self.keys, self.values
        added = key_states.shape[2]
        self.reserve(len(self.keys), left=0, right=added)
        keys, values = self._buffers
        keys[: len(self.keys), :, self._end : self._end + added] = key_states
        values[: len(self.keys), :, self._end : self._end + added] = value_states
        self._end += added
        self._set_window(len(self.keys))
        return self.keys, self.values

    def owns_window(self) -> bool:
        """Whether ``keys``/``values`` are still the window this layer set (nothing replaced them)."""
        window = getattr(self, "_window", None)
        return self._buffers is not None and window is not None and window[0] is self.keys and window[1] is self.values

    def reserve(self, rows: int, left: int, right: int) -> None:
        """Make room for ``rows`` rows and ``left``/``right`` more columns (one copy of the window if there is none)."""
        if self.owns_window():
            room_rows, _, room_columns, _ = self._buffers[0].shape
            if rows <= room_rows and left <= self._start and self._end + right <= room_columns:
                return
        b, h, length, d = self.keys.shape
        left_room = max(left, length // 2) if left else 0
        right_room = max(right, length, MIN_ROOM)
        shape = (max(rows, b), h, left_room + length + right_room, d)
        keys, values = self.keys.new_empty(shape), self.values.new_empty(shape)  # room is written before it is seen
        keys[:b, :, left_room : left_room + length] = self.keys
        values[:b, :, left_room : left_room + length] = self.values
        self._buffers, self._start, self._end = (keys, values), left_room, left_room + length
        self._set_window(b)

    def _set_window(self, rows: int) -> None:
        keys, values = self._buffers
        self.keys, self.values = keys[:rows, :, self._start : self._end], values[:rows, :, self._start : self._end]
        self._window = (self.keys, self.values)


def growing_cache(config: PretrainedConfig) -> DynamicCache:
    """An empty ``DynamicCache`` of :class:`GrowingLayer` for ``config``."""
    cache = DynamicCache(config=config)
    cache.layers = [GrowingLayer() for _ in cache.layers]
    return cache


def join_right_aligned(cache: DynamicCache, joining: DynamicCache, max_rows: int = 0) -> None:
    """Add the rows of ``joining`` to ``cache`` after its own, both ending at the same (last) column.

    The shorter side is padded on the left (zeros or stale columns; the caller's attention mask hides them).
    ``max_rows`` reserves row room for later joins.
    """
    for layer, new in zip(cache.layers, joining.layers, strict=True):
        rows, length = layer.keys.shape[0], layer.keys.shape[2]
        added, new_length = new.keys.shape[0], new.keys.shape[2]
        wider = max(0, new_length - length)
        layer.reserve(max(rows + added, max_rows), left=wider, right=0)
        keys, values = layer._buffers
        layer._start -= wider
        if wider:  # the old rows' new columns: padding
            keys[:rows, :, layer._start : layer._start + wider] = 0
            values[:rows, :, layer._start : layer._start + wider] = 0
        first = layer._end - new_length
        keys[rows : rows + added, :, layer._start : first] = 0
        values[rows : rows + added, :, layer._start : first] = 0
        keys[rows : rows + added, :, first : layer._end] = new.keys
        values[rows : rows + added, :, first : layer._end] = new.values
        layer._set_window(rows + added)


def leaving_order(rows: int, leaving: Sequence[int]) -> list[int]:
    """Which old row each remaining row is, when every leaving row's place is taken by one of the last rows.

    Rows before the first leaving one keep their places, so only ``len(leaving)`` rows move at most.
    """
    gone = set(leaving)
    kept = rows - len(gone)
    order = list(range(kept))
    movers = [i for i in range(kept, rows) if i not in gone]
    for hole, mover in zip(sorted(i for i in gone if i < kept), movers, strict=True):
        order[hole] = mover
    return order


def keep_rows(cache: DynamicCache, order: Sequence[int]) -> None:
    """Keep the rows ``order`` names (from :func:`leaving_order`), moving the few that change places."""
    moves = [(new, old) for new, old in enumerate(order) if new != old]
    for layer in cache.layers:
        if not layer.owns_window() or any(old < len(order) for _, old in moves):  # not a leaving_order
            layer.batch_select_indices(torch.tensor(list(order), device=layer.keys.device))
            continue
        keys, values = layer._buffers
        for new, old in moves:
            keys[new], values[new] = keys[old], values[old]
        layer._set_window(len(order))


def trim_left(cache: DynamicCache, columns: int) -> None:
    """Drop the first ``columns`` positions of every row (padding no row needs any more)."""
    for layer in cache.layers:
        if layer.owns_window():
            layer._start += columns
            layer._set_window(len(layer.keys))
        else:
            layer.keys, layer.values = layer.keys[:, :, columns:], layer.values[:, :, columns:]
