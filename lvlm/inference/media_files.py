"""Media files on disk: which modality a file belongs to, and clear errors for missing or unsupported ones.

:func:`load_media` decodes and transforms one item through the model's own modality. A file's modality is the
installed modality whose ``file_extensions`` hold its extension (a directory is a
frame-based item: a video stored as frames). A modality whose files share an extension with another (a
plugin's 16-bit depth PNGs) is attached by name instead (``lvlm chat --media depth=scene.png``; a question
record's ``depth`` field).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from lvlm.modalities.catalog import installed_modality_classes

if TYPE_CHECKING:
    from lvlm.inference.session import InferenceSession


class UnsupportedMediaError(ValueError):
    """A file whose extension no installed modality reads."""

    reason = "unsupported_format"

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = os.fspath(path)
        known = "; ".join(
            f"{name}: {', '.join(cls.file_extensions)}"
            for name, cls in installed_modality_classes().items()
            if cls.file_extensions
        )
        super().__init__(f"{self.path}: unsupported media format; {known} (or a folder of frame images)")


class MissingMediaFileError(FileNotFoundError):
    """A media file named by a question or on the command line does not exist."""

    reason = "missing_file"

    def __init__(self, path: str | os.PathLike, key: str = "?") -> None:
        self.path = os.fspath(path)
        self.key = key
        where = f"sample {key!r}: " if key != "?" else ""
        super().__init__(f"{where}media file not found: {self.path}")


def file_modality(path: str | os.PathLike) -> str:
    """The name of the installed modality that reads a file, from its extension (a folder: frames).

    Raises:
        UnsupportedMediaError: no installed modality reads it.
    """
    path = Path(path)
    classes = installed_modality_classes()
    if path.is_dir():
        found = [name for name, cls in classes.items() if cls.uses_frames]
    else:
        ext = path.suffix.lower().lstrip(".")
        found = [name for name, cls in classes.items() if ext and ext in cls.file_extensions]
    if not found:
        raise UnsupportedMediaError(path)
    return found[0]


def check_media_file(path: str | os.PathLike, key: str = "?") -> str:
    """Fail early and clearly on a missing or unsupported file; returns its modality's name."""
    if not Path(path).exists():
        raise MissingMediaFileError(path, key)
    return file_modality(path)


def load_media(session: InferenceSession, modality: str, source: Any, key: str = "?") -> torch.Tensor:
    """Decode and transform one item of ``modality`` (``image``, ``video``, a plugin's) as the model's modality does
    (videos: ``num_frames`` frames sampled uniformly, no random flip; images: padded to square or centre-cropped as
    the model records): a file, its bytes, a video's frames, or what the modality decodes itself (a PIL image).

    Raises:
        MissingMediaFileError: a path that does not exist.
        MediaDecodeError: the data cannot be decoded (the error names the key and the file).
        ValueError: the model has no such modality.
    """
    if isinstance(source, (str, os.PathLike)) and not Path(source).exists():
        raise MissingMediaFileError(source, key)
    return session.load(modality, source, key)
