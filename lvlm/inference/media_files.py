"""Media files on disk: which are images, which are videos, and clear errors for missing or unsupported ones.

Light on purpose (no torch): ``lvlm chat`` checks its files before loading anything heavy.
"""

from __future__ import annotations

import os
from pathlib import Path

from lvlm.data.sample_format import IMAGE_EXTENSIONS, VIDEO_EXTENSIONS

# The original CLI also opens .bmp images (serve/utils.py); PIL reads them.
SUPPORTED_IMAGES = (*IMAGE_EXTENSIONS, "bmp")
SUPPORTED_VIDEOS = VIDEO_EXTENSIONS


class UnsupportedMediaError(ValueError):
    """A file whose extension is neither a supported image nor a supported video."""

    reason = "unsupported_format"

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = os.fspath(path)
        super().__init__(
            f"{self.path}: unsupported media format; images: {', '.join(SUPPORTED_IMAGES)}; "
            f"videos: {', '.join(SUPPORTED_VIDEOS)} (or a folder of frame images)"
        )


class MissingMediaFileError(FileNotFoundError):
    """A media file named by a question or on the command line does not exist."""

    reason = "missing_file"

    def __init__(self, path: str | os.PathLike, key: str = "?") -> None:
        self.path = os.fspath(path)
        self.key = key
        where = f"sample {key!r}: " if key != "?" else ""
        super().__init__(f"{where}media file not found: {self.path}")


def media_kind(path: str | os.PathLike) -> str:
    """``image`` or ``video`` from a file's extension (a directory is a video stored as frames).

    Raises:
        UnsupportedMediaError: the extension is neither.
    """
    path = Path(path)
    if path.is_dir():
        return "video"
    ext = path.suffix.lower().lstrip(".")
    if ext in SUPPORTED_IMAGES:
        return "image"
    if ext in SUPPORTED_VIDEOS:
        return "video"
    raise UnsupportedMediaError(path)


def check_media_file(path: str | os.PathLike, key: str = "?") -> str:
    """Fail early and clearly on a missing or unsupported file; returns its kind."""
    if not Path(path).exists():
        raise MissingMediaFileError(path, key)
    return media_kind(path)
