"""The engine's KV cache: per layer, keys and values in buffers with room for more rows and positions.

Built on transformers' public ``Cache`` / ``CacheLayerMixin`` with storage of its own. A layer's keys and values
``[b, h, l, d]`` are the window ``[:rows, :, start:end]`` of larger buffers, so that

- a decoding step writes only its own column (:meth:`RowCacheLayer.update`; the buffers double when full),
- joining rows are written into free rows, right-aligned with the others (:meth:`RowCache.join`),
- a row that leaves is overwritten by one of the last rows (:meth:`RowCache.keep_rows`),
- padding columns no row needs any more are cut by moving ``start`` (:meth:`RowCache.trim_left`),

none of which copies the rows that stay (transformers' ``DynamicLayer`` concatenates, copying a layer's whole
cache at every step). Room is left uninitialised and written before the window covers it; columns of the window
outside a row's own positions hold zeros or stale keys of an earlier row (finite, so a masked position adds
exactly 0), and the caller's attention mask hides them.

Legend: ``b`` rows, ``h`` KV heads, ``l`` cached positions, ``d`` head width.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from transformers.cache_utils import Cache, CacheLayerMixin

MIN_ROOM = 64


class RowCacheLayer(CacheLayerMixin):
    """One layer's keys and values ``[b, h, l, d]``: windows of buffers with room."""

    def __init__(self) -> None:
        super().__init__()
        self.buffers: tuple[torch.Tensor, torch.Tensor] | None = None  # [rows room, h, columns room, d] each
        self.rows = self.start = self.end = 0

    def lazy_initialization(self, key_states: torch.Tensor, value_states: torch.Tensor) -> None:
        b, h, _, d = key_states.shape
        self.buffers = key_states.new_empty(b, h, MIN_ROOM, d), value_states.new_empty(b, h, MIN_ROOM, d)
        self.rows, self.start, self.end = b, 0, 0
        self.is_initialized = True

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args, **kwargs):
        """Append ``[b, h, added, d]`` keys and values after the window; returns the whole window."""
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
        added = key_states.shape[2]
        self.reserve(self.rows, left=0, right=added)
        keys, values = self.buffers
        keys[: self.rows, :, self.end : self.end + added] = key_states
        values[: self.rows, :, self.end : self.end + added] = value_states
        self.end += added
        return self.window()

    def window(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The cached keys and values ``[b, h, l, d]`` (views of the buffers)."""
        keys, values = self.buffers
        self.keys = keys[: self.rows, :, self.start : self.end]
        self.values = values[: self.rows, :, self.start : self.end]
        return self.keys, self.values

    def get_mask_sizes(self, query_length: int) -> tuple[int, int]:
        return self.end - self.start + query_length, 0

    def get_seq_length(self) -> int:
        return self.end - self.start

    def get_max_length(self) -> int:
        return -1

    def reserve(self, rows: int, left: int, right: int) -> None:
        """Make room for ``rows`` rows and ``left``/``right`` more columns (one copy of the window if there is none)."""
        room_rows, h, room_columns, d = self.buffers[0].shape
        if rows <= room_rows and left <= self.start and self.end + right <= room_columns:
            return
        length = self.end - self.start
        left_room = max(left, length // 2) if left else 0
        shape = (max(rows, room_rows), h, left_room + length + max(right, length, MIN_ROOM), d)
        new = tuple(old.new_empty(shape) for old in self.buffers)
        for target, old in zip(new, self.buffers, strict=True):
            target[: self.rows, :, left_room : left_room + length] = old[: self.rows, :, self.start : self.end]
        self.buffers, self.start, self.end = new, left_room, left_room + length


class RowCache(Cache):
    """A KV cache of :class:`RowCacheLayer` for a model of ``layers`` layers, with the batch operations of the
    engine: rows join (:meth:`join`), leave (:meth:`keep_rows`) and padding columns go (:meth:`trim_left`)."""

    def __init__(self, layers: int) -> None:
        super().__init__(layers=[RowCacheLayer() for _ in range(layers)])

    def join(self, joining: RowCache, max_rows: int = 0) -> None:
        """Add the rows of ``joining`` after these, both ending at the same (last) column; the shorter side is
        padded on the left (zeros). ``max_rows`` reserves row room for later joins."""
        for layer, new in zip(self.layers, joining.layers, strict=True):
            rows, added = layer.rows, new.rows
            length, new_length = layer.end - layer.start, new.end - new.start
            wider = max(0, new_length - length)
            layer.reserve(max(rows + added, max_rows), left=wider, right=0)
            keys, values = layer.buffers
            layer.start -= wider
            first = layer.end - new_length
            for buffer, source in ((keys, new.keys), (values, new.values)):
                buffer[:rows, :, layer.start : layer.start + wider] = 0
                buffer[rows : rows + added, :, layer.start : first] = 0
                buffer[rows : rows + added, :, first : layer.end] = source
            layer.rows = rows + added
            layer.window()

    def keep_rows(self, order: Sequence[int]) -> None:
        """Keep the rows ``order`` names, in that order (from :func:`leaving_order`: only the few that change places
        move)."""
        moves = [(new, old) for new, old in enumerate(order) if new != old]
        for layer in self.layers:
            for buffer in layer.buffers:
                for new, old in moves:
                    buffer[new] = buffer[old]
            layer.rows = len(order)
            layer.window()

    def trim_left(self, columns: int) -> None:
        """Drop the first ``columns`` positions of every row (padding no row needs any more)."""
        for layer in self.layers:
            layer.start += columns
            layer.window()


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
