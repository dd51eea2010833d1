"""The shard sample format (docs/data-format.md): which members of a WebDataset sample are its media, in order.

A sample is ``__key__`` + ``json`` + media members. WebDataset splits a member name at the FIRST dot of its
basename: ``abc.0.jpg`` becomes key ``abc`` and member ``0.jpg``. So member names are:

- images: ``jpg`` (one image) or ``0.jpg``, ``1.jpg``, ... (several); also ``jpeg``, ``png``, ``webp``.
- videos: ``mp4`` (one video) or ``0.mp4``, ``1.mp4``, ...; also ``webm``, ``mkv``, ``mov``, ``avi``, ``gif``.
- videos stored as frames: ``frames.0.jpg``, ``frames.1.jpg``, ... (one video) or ``0.frames.3.jpg`` (frame 3 of
  video 0) when there are several. Frame numbers are integers, ordered numerically (``frames.10`` after
  ``frames.9``). A sample stores its videos either all as files or all as frames.

The ``i``-th ``<image>`` placeholder of the conversation is the ``i``-th image; the same for ``<video>``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from lvlm.data.sample_errors import SampleFormatError

IMAGE_EXTENSIONS = ("jpg", "jpeg", "png", "webp")
VIDEO_EXTENSIONS = ("mp4", "webm", "mkv", "mov", "avi", "gif")
METADATA_MEMBERS = ("json", "txt", "cls")
IMAGE_PLACEHOLDER = "<image>"
VIDEO_PLACEHOLDER = "<video>"

_MEDIA = re.compile(r"^(?:(?P<index>\d+)\.)?(?P<ext>[a-z0-9]+)$")
_FRAME = re.compile(r"^(?:(?P<index>\d+)\.)?frames\.(?P<frame>\d+)\.(?P<ext>[a-z0-9]+)$")

MediaMembers = dict[str, list[tuple[str, Any]]]


def media_members(sample: Mapping[str, Any]) -> MediaMembers:
    """Find a sample's media members, each list in placeholder order.

    Args:
        sample: A raw WebDataset sample (``{"__key__": ..., "json": ..., "jpg": b"...", ...}``), before any
            ``.decode()``; keys starting with ``_`` and metadata members (``json``, ``txt``, ``cls``) are ignored.

    Returns:
        ``{"images": [(name, bytes)], "videos": [(name, bytes)], "frames": [(name, [bytes, ...])]}`` where a
        ``frames`` entry is one video stored as its frames in temporal order (name ``"frames"`` or
        ``"0.frames"``). At most one of ``videos`` and ``frames`` is non-empty.

    Raises:
        SampleFormatError: On an unknown member, a mix of numbered and unnumbered members of one kind, a gap in
            the numbering, or videos stored both as files and as frames.
    """
    key = str(sample.get("__key__", "?"))
    images: dict[int | None, tuple[str, Any]] = {}
    videos: dict[int | None, tuple[str, Any]] = {}
    frames: dict[int | None, dict[int, Any]] = {}
    for name, value in sample.items():
        if name.startswith("_") or name in METADATA_MEMBERS:
            continue
        lowered = name.lower()
        if match := _FRAME.match(lowered):
            if match["ext"] not in IMAGE_EXTENSIONS:
                raise SampleFormatError(key, f"frame member {name!r} is not an image ({', '.join(IMAGE_EXTENSIONS)})")
            frames.setdefault(_index(match), {})[int(match["frame"])] = value
        elif (match := _MEDIA.match(lowered)) and match["ext"] in IMAGE_EXTENSIONS:
            _put(images, _index(match), (name, value), key, "image")
        elif match and match["ext"] in VIDEO_EXTENSIONS:
            _put(videos, _index(match), (name, value), key, "video")
        else:
            raise SampleFormatError(key, f"unknown member {name!r}; see docs/data-format.md for member names")
    if videos and frames:
        raise SampleFormatError(key, "videos are stored both as files and as frames; use one way per sample")
    frame_lists = {i: (_frames_name(i), [f[j] for j in sorted(f)]) for i, f in frames.items()}
    return {
        "images": _in_order(images, key, "image"),
        "videos": _in_order(videos, key, "video"),
        "frames": _in_order(frame_lists, key, "frames"),
    }


def count_placeholders(conversations: list[Mapping[str, Any]]) -> tuple[int, int]:
    """Number of ``<image>`` and ``<video>`` placeholders over all turns of a conversation."""
    text = "".join(str(turn.get("value", "")) for turn in conversations)
    return text.count(IMAGE_PLACEHOLDER), text.count(VIDEO_PLACEHOLDER)


def member_name(kind: str, index: int, count: int, ext: str, frame: int | None = None) -> str:
    """The member name of media item ``index`` of ``count`` of one kind (``"image"``, ``"video"``, ``"frames"``)."""
    prefix = f"{index}." if count > 1 else ""
    if kind == "frames":
        return f"{prefix}frames.{frame}.{ext}"
    return f"{prefix}{ext}"


def _index(match: re.Match[str]) -> int | None:
    return None if match["index"] is None else int(match["index"])


def _put(found: dict[int | None, Any], index: int | None, item: tuple[str, Any], key: str, kind: str) -> None:
    if index in found:
        raise SampleFormatError(key, f"two {kind} members for one slot: {found[index][0]!r} and {item[0]!r}")
    found[index] = item


def _frames_name(index: int | None) -> str:
    return "frames" if index is None else f"{index}.frames"


def _in_order(found: dict[int | None, Any], key: str, kind: str) -> list[Any]:
    if not found:
        return []
    if None in found:
        if len(found) > 1:
            raise SampleFormatError(key, f"{kind} members mix numbered and unnumbered names: {sorted(map(str, found))}")
        return [found[None]]
    indices = sorted(i for i in found if i is not None)
    if indices != list(range(len(indices))):
        raise SampleFormatError(key, f"{kind} members must be numbered 0..{len(indices) - 1}, found {indices}")
    return [found[i] for i in indices]
