"""Media files (or shard bytes) → model-ready tensors, with the tower's deterministic preprocessing.

Videos: ``num_frames`` frames sampled uniformly (first and last included), short side decoded down to the
tower's size where the backend can, resized and centre-cropped; no random flip (the original flips at random
even at test time, spec §8.1). Images: padded to square (or centre-cropped) and resized.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from PIL import Image

from lvlm.data.decoding import decode_frames, decode_image, decode_video
from lvlm.data.decoding.errors import MediaDecodeError
from lvlm.data.decoding.image import to_rgb
from lvlm.inference.media_files import (
    SUPPORTED_IMAGES,
    SUPPORTED_VIDEOS,
    MissingMediaFileError,
    UnsupportedMediaError,
    check_media_file,
    media_kind,
)
from lvlm.inference.session import InferenceSession


def load_image(
    session: InferenceSession, source: bytes | str | os.PathLike | Image.Image, key: str = "?"
) -> torch.Tensor:
    """One image (file, bytes, or an already decoded PIL image, converted by the decoder's rules) → ``[3, s, s]``."""
    image = to_rgb(source) if isinstance(source, Image.Image) else decode_image(source, key=key)
    return session.transform("image")(image)


def load_video(
    session: InferenceSession, source: bytes | str | os.PathLike | list[bytes], key: str = "?"
) -> torch.Tensor:
    """One video file, its bytes, or its frames (a folder or a list of encoded frames) → ``[t, 3, s, s]`` float32."""
    size = session.slot("video").size
    if isinstance(source, list) or (not isinstance(source, bytes) and Path(source).is_dir()):
        frames = decode_frames(source, session.num_frames, key=key, short_side=size)
    else:
        frames = decode_video(source, session.num_frames, key=key, short_side=size)
    return session.transform("video")(frames)


def load_media(
    session: InferenceSession, kind: str, source: bytes | str | os.PathLike | Image.Image, key: str = "?"
) -> torch.Tensor:
    """Decode and transform one item of ``kind`` (``image``/``video``; an image may be a PIL image).

    Raises:
        MissingMediaFileError: a path that does not exist.
        MediaDecodeError: the data cannot be decoded (the error names the key and the file).
    """
    if isinstance(source, (str, os.PathLike)) and not Path(source).exists():
        raise MissingMediaFileError(source, key)
    if kind == "video":
        return load_video(session, source, key)
    if kind == "image":
        return load_image(session, source, key)
    raise ValueError(f"sample {key!r}: unknown media kind {kind!r}")


__all__ = [
    "MediaDecodeError",
    "MissingMediaFileError",
    "SUPPORTED_IMAGES",
    "SUPPORTED_VIDEOS",
    "UnsupportedMediaError",
    "check_media_file",
    "load_media",
    "media_kind",
]
