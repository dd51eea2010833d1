"""The shard sample format (docs/data-format.md): which members of a WebDataset sample are its media, in order.

A sample is ``__key__`` + ``json`` + media members. WebDataset splits a member name at the FIRST dot of its
basename: ``abc.0.jpg`` becomes key ``abc`` and member ``0.jpg``. So member names are:

``ext`` (the only item of a modality) or ``0.ext``, ``1.ext``, ... (several), and items stored as frames:
``frames.0.jpg`` (one item) or ``0.frames.3.jpg`` (frame 3 of item 0). Which modality owns which extension is
the modality's own business (:meth:`Modality.member_index`): the built-in image modality claims ``jpg``,
``jpeg``, ``png``, ``webp``; the video modality ``mp4``, ``webm``, ... and frames; a plugin its own. Frame numbers
are ordered numerically (``frames.10`` after ``frames.9``); a sample stores one modality's items either all as
files or all as frames.

The ``i``-th placeholder of a modality in the conversation is that modality's ``i``-th item.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from lvlm.data.sample_errors import SampleFormatError
from lvlm.models.modality import Modality

METADATA_MEMBERS = ("json", "txt", "cls")

MediaMembers = dict[str, list[tuple[str, Any]]]


def media_members(sample: Mapping[str, Any], modalities: Sequence[Modality]) -> MediaMembers:
    """Find a sample's media members, each modality's list in placeholder order.

    Each member is offered to the modalities in order (:meth:`Modality.member_index`); the first that
    claims it owns it. A claim with a frame index makes the member one frame of a frame-stored item.

    Args:
        sample: A raw WebDataset sample (``{"__key__": ..., "json": ..., "jpg": b"...", ...}``), before any
            ``.decode()``; keys starting with ``_`` and metadata members (``json``, ``txt``, ``cls``) are ignored.
        modalities: The modalities that may claim members.

    Returns:
        ``{name: [(member, payload), ...]}`` for every modality (empty lists included), where the payload of a
        frame-stored item is its frames' bytes in temporal order (member ``"frames"`` or ``"0.frames"``).

    Raises:
        SampleFormatError: On an unclaimed member, a mix of numbered and unnumbered members of one modality, a
            gap in the numbering, or items of one modality stored both as files and as frames.
    """
    key = str(sample.get("__key__", "?"))
    files: dict[str, dict[int | None, tuple[str, Any]]] = {m.name: {} for m in modalities}
    frames: dict[str, dict[int | None, dict[int, Any]]] = {m.name: {} for m in modalities}
    for name, value in sample.items():
        if name.startswith("_") or name in METADATA_MEMBERS:
            continue
        claim = next(((m.name, found) for m in modalities if (found := m.member_index(name)) is not None), None)
        if claim is None:
            raise SampleFormatError(key, f"unknown member {name!r}; see docs/data-format.md for member names")
        owner, (index, frame) = claim
        if frame is None:
            _put(files[owner], index, (name, value), key, owner)
        else:
            frames[owner].setdefault(index, {})[frame] = value
    out: MediaMembers = {}
    for modality in modalities:
        stored, framed = files[modality.name], frames[modality.name]
        if stored and framed:
            raise SampleFormatError(
                key, f"{modality.name} items are stored both as files and as frames; use one way per sample"
            )
        frame_lists = {i: (_frames_name(i), [f[j] for j in sorted(f)]) for i, f in framed.items()}
        out[modality.name] = _in_order(stored or frame_lists, key, modality.name)
    return out


def count_placeholders(conversations: list[Mapping[str, Any]], modalities: Sequence[Modality]) -> dict[str, int]:
    """Number of each modality's placeholders over all turns of a conversation, by modality name."""
    text = "".join(str(turn.get("value", "")) for turn in conversations)
    return {m.name: text.count(m.token) for m in modalities}


def _put(found: dict[int | None, Any], index: int | None, item: tuple[str, Any], key: str, modality: str) -> None:
    if index in found:
        raise SampleFormatError(key, f"two {modality} members for one slot: {found[index][0]!r} and {item[0]!r}")
    found[index] = item


def _frames_name(index: int | None) -> str:
    return "frames" if index is None else f"{index}.frames"


def _in_order(found: dict[int | None, Any], key: str, modality: str) -> list[Any]:
    if not found:
        return []
    if None in found:
        if len(found) > 1:
            raise SampleFormatError(
                key, f"{modality} members mix numbered and unnumbered names: {sorted(map(str, found))}"
            )
        return [found[None]]
    indices = sorted(i for i in found if i is not None)
    if indices != list(range(len(indices))):
        raise SampleFormatError(key, f"{modality} members must be numbered 0..{len(indices) - 1}, found {indices}")
    return [found[i] for i in indices]
