"""Typed decode errors: they name the sample key and the file so a bad sample can be found and reported."""

from __future__ import annotations

import os


def describe_source(source: object) -> str:
    """A short human description of a media source: the path, or the byte count of in-memory data."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        return f"<{len(source)} bytes>"
    if isinstance(source, (str, os.PathLike)):
        return os.fspath(source)
    if isinstance(source, (list, tuple)):
        return f"<{len(source)} frames>"
    return f"<{type(source).__name__}>"


class MediaDecodeError(ValueError):
    """Base class: a media item of one sample could not be decoded.

    Attributes:
        key: The sample key (``__key__`` of a shard sample, or the record id), ``"?"`` when unknown.
        source: What was being decoded: a path, or ``"<N bytes>"`` for in-memory data.
        reason: Why it failed, in words.
    """

    modality = "media"

    def __init__(self, key: str, source: object, reason: str) -> None:
        self.key = key
        self.source = describe_source(source)
        self.reason = reason
        super().__init__(
            f"sample {key!r}: cannot decode {self.modality} {self.source}: {reason}. "
            f"Check or re-encode the file, or drop the sample from the shard."
        )


class VideoDecodeError(MediaDecodeError):
    """A video (file, bytes or pre-extracted frames) of one sample could not be decoded."""

    modality = "video"


class ImageDecodeError(MediaDecodeError):
    """An image of one sample could not be decoded."""

    modality = "image"
