"""Video decoding front end: backend choice, uniform sampling, pre-extracted frames."""

from __future__ import annotations

import functools
import importlib
import importlib.util
import os
import re
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from lvlm.data.decoding.errors import ImageDecodeError, VideoDecodeError
from lvlm.data.decoding.image import decode_image
from lvlm.data.decoding.sampling import reduced_size, uniform_frame_indices

# Preference order: PyAV first. Both give bit-identical frames, but PyAV leaves disposable H.264 pictures
# undecoded (lvlm.data.decoding.disposable), about 2x faster on x264-default clips than decord, which decodes
# every frame of the GOP; PyAV also installs everywhere and is maintained. decord stays available by name
# (backend="decord", LVLMDataModule(video_backend="decord")): it is the original Video-LLaVA's decoder.
_BACKENDS = {"pyav": "lvlm.data.decoding.pyav_backend", "decord": "lvlm.data.decoding.decord_backend"}
_IMPORT_NAMES = {"decord": "decord", "pyav": "av"}


def available_backends() -> list[str]:
    """Names of the installed video backends, preferred first (``["pyav", "decord"]`` on x86_64)."""
    return list(_installed())


@functools.cache
def _installed() -> tuple[str, ...]:
    return tuple(name for name in _BACKENDS if importlib.util.find_spec(_IMPORT_NAMES[name]) is not None)


def default_backend() -> str:
    """The backend :func:`decode_video` uses when none is named: PyAV (decord only if PyAV is missing)."""
    backends = available_backends()
    if not backends:
        raise RuntimeError("no video backend installed: `pip install av` (or `pip install decord` on x86_64)")
    return backends[0]


def decode_video(
    source: bytes | str | os.PathLike,
    num_frames: int,
    *,
    key: str = "?",
    short_side: int | None = None,
    backend: str | None = None,
) -> torch.Tensor:
    """Decode ``num_frames`` frames sampled uniformly (first and last included) from a video.

    Frame indices follow :func:`uniform_frame_indices`: a video shorter than ``num_frames`` repeats frames.

    Args:
        source: Encoded video bytes (mp4, webm, mkv, mov, avi, ...) or a path to a video file.
        num_frames: Number of frames to return.
        key: The sample key, used in error messages.
        short_side: If given, frames are returned with their short side scaled down to this size (aspect ratio
            kept, never upscaled). PyAV scales while converting to RGB; decord decodes at full size then scales.
        backend: ``"decord"`` or ``"pyav"``; :func:`default_backend` when ``None``.

    Returns:
        uint8 tensor ``[t, h, w, 3]`` (t = ``num_frames``), RGB.

    Raises:
        VideoDecodeError: If the data is empty, truncated, not a video, or has no decodable frames.
        ValueError: If ``backend`` is unknown or not installed.
    """
    name = backend or default_backend()
    if name not in _BACKENDS:
        raise ValueError(f"unknown video backend {name!r}; choose one of {sorted(_BACKENDS)}")
    if name not in _installed():
        raise ValueError(f"video backend {name!r} is not installed; installed: {available_backends()}")
    if isinstance(source, (bytes, bytearray, memoryview)) and len(source) == 0:
        raise VideoDecodeError(key, source, "the data is empty (zero bytes)")
    if not isinstance(source, (bytes, bytearray, memoryview)) and not Path(source).is_file():
        raise VideoDecodeError(key, source, "no such file")
    module = importlib.import_module(_BACKENDS[name])
    return module.decode(source, num_frames, key=key, short_side=short_side)


def decode_frames(
    frames: list[bytes] | str | os.PathLike,
    num_frames: int,
    *,
    key: str = "?",
    short_side: int | None = None,
) -> torch.Tensor:
    """Sample ``num_frames`` frames uniformly from a video stored as pre-extracted images (JPEG, PNG, ...).

    Args:
        frames: Encoded frames in temporal order, or a directory whose image files are the frames (ordered by
            the numbers in their names, so ``frame_10.jpg`` follows ``frame_9.jpg``).
        num_frames: Number of frames to return (repeats frames when fewer are stored).
        key: The sample key, used in error messages.
        short_side: As in :func:`decode_video`.

    Returns:
        uint8 tensor ``[t, h, w, 3]``, RGB.

    Raises:
        VideoDecodeError: If there are no frames, a frame is not a readable image, or frame sizes differ.
    """
    source: object = frames
    if isinstance(frames, (str, os.PathLike)):
        files = sorted((p for p in Path(frames).iterdir() if p.is_file()), key=lambda p: _natural_key(p.name))
        frames = [p.read_bytes() for p in files]
    if not frames:
        raise VideoDecodeError(key, source, "no frames stored")
    decoded = []
    for i in uniform_frame_indices(len(frames), num_frames):
        try:
            image = decode_image(frames[i], key=key)
        except ImageDecodeError as err:
            raise VideoDecodeError(key, source, f"frame {i}: {err.reason}") from err
        decoded.append(np.asarray(image.resize(reduced_size(*image.size, short_side), Image.Resampling.BILINEAR)))
    if len({d.shape for d in decoded}) > 1:
        raise VideoDecodeError(key, source, f"frames differ in size: {sorted({d.shape for d in decoded})}")
    return torch.from_numpy(np.stack(decoded))


def _natural_key(name: str) -> list[int | str]:
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]
