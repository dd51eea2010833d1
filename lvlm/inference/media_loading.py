"""Media files (or shard bytes) → model-ready tensors, through the model's own modalities.

Each modality decodes and transforms its items with its tower's deterministic preprocessing (videos:
``num_frames`` frames sampled uniformly, no random flip, unlike the original at test time, spec §8.1; images:
padded to square or centre-cropped as the model records; a plugin's modality as it defines).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from lvlm.data.decoding.errors import MediaDecodeError
from lvlm.inference.media_files import (
    MissingMediaFileError,
    UnsupportedMediaError,
    check_media_file,
    media_kind,
)
from lvlm.inference.session import InferenceSession


def load_media(session: InferenceSession, modality: str, source: Any, key: str = "?") -> torch.Tensor:
    """Decode and transform one item of the modality named ``modality`` (``image``, ``video``, a plugin's): a file,
    its bytes, a video's frames, or what the modality decodes itself (the image modality: a PIL image).

    Raises:
        MissingMediaFileError: a path that does not exist.
        MediaDecodeError: the data cannot be decoded (the error names the key and the file).
        ValueError: the model has no modality ``modality``.
    """
    if isinstance(source, (str, os.PathLike)) and not Path(source).exists():
        raise MissingMediaFileError(source, key)
    return session.load(modality, source, key)


__all__ = [
    "MediaDecodeError",
    "MissingMediaFileError",
    "UnsupportedMediaError",
    "check_media_file",
    "load_media",
    "media_kind",
]
