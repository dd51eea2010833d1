"""What the data pipeline asks of a modality: a structural interface, so ``lvlm.data`` needs no modality class.

The modality components live a layer above (:mod:`lvlm.modalities`: ``ImageModality``, ``VideoModality``, a
plugin's own); anything with these members can be given to :class:`~lvlm.data.LVLMDataModule`,
the sample pipeline and the tokenizer. Nothing in ``lvlm.data`` knows which kinds of media exist.

Legend: ``n`` items, ``t`` frames, ``c`` channels, ``s`` the tower's input side.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import torch


@runtime_checkable
class MediaModality(Protocol):
    """One kind of media as the pipeline sees it.

    Attributes:
        name: the modality's name (``image``); ``batch["modalities"]`` and error messages use it.
        uses_frames: a video-like modality (``num_frames`` frames per item).
    """

    name: str
    uses_frames: bool

    @property
    def token(self) -> str:
        """The placeholder written in conversations and repeated in ``input_ids`` (``<image>``)."""
        ...

    @property
    def input_name(self) -> str:
        """Key of the stacked tensor in a batch (``images``)."""
        ...

    def num_tokens(self, num_frames: int) -> int:
        """Placeholder ids one item expands to."""
        ...

    def member_index(self, member: str) -> tuple[int | None, int | None] | None:
        """``(item index, frame index)`` if this modality claims a shard member name, else None."""
        ...

    def decode(self, payload: Any, *, key: str, num_frames: int, backend: str | None = None) -> Any:
        """Decode one item (bytes, a path, or a list of encoded frames)."""
        ...

    def make_transform(
        self, *, augment: bool = False, seed: int | None = None, normalize: bool = True
    ) -> Callable[[Any], torch.Tensor]:
        """The transform from a decoded item to the tower's input."""
        ...

    def collate(self, items: Sequence[torch.Tensor]) -> torch.Tensor:
        """Stack one batch's items into the tower's input."""
        ...


@runtime_checkable
class ShardModality(Protocol):
    """What ``lvlm shards`` asks of a modality: the record fields naming its files, and the members it writes."""

    name: str

    @property
    def token(self) -> str: ...

    @property
    def record_fields(self) -> tuple[str, ...]:
        """Fields of a JSON record that name this modality's files (``image``)."""
        ...

    def shard_members(self, path: Path, index: int, count: int, key: str, **options: Any) -> dict[str, bytes]:
        """Members to write for item ``index`` of ``count`` (``{"0.jpg": b"..."}``).

        Raises:
            lvlm.data.shards.SkippedSample, MediaDecodeError or ValueError: the file cannot be stored.
        """
        ...


def modality_list(modalities: Mapping[str, MediaModality] | Sequence[MediaModality] | None) -> list[MediaModality]:
    """The modalities as a list (a mapping's values), checked: each needs its own name, token and input name.

    Raises:
        ValueError: two modalities share a name, a token or an input name.
    """
    found = list((modalities or {}).values() if isinstance(modalities, Mapping) else modalities or ())
    for attr in ("name", "token", "input_name"):
        values = [getattr(m, attr) for m in found]
        if len(set(values)) != len(values):
            raise ValueError(f"modalities: each needs its own {attr}, got {values}")
    return found
