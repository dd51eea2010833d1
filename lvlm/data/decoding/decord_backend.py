"""decord video backend (x86_64 wheels only; the original Video-LLaVA's default decoder).

decord 0.6.0 fails with ``DECORDArrayCopyFromTo: The size must exactly match`` for some frame widths (e.g. 48,
72 px), both for stored frames and for its own reduced-size decode (``VideoReader(width=, height=)``). So
frames are decoded at full size and resized with antialiased bilinear interpolation in torchvision, and a video
that hits the bug is decoded by PyAV instead (the same frames, see ``tests/data/test_decoding.py``).
"""

from __future__ import annotations

import io
import os

import torch

from lvlm.data.decoding import pyav_backend
from lvlm.data.decoding.errors import VideoDecodeError
from lvlm.data.decoding.sampling import reduced_size, uniform_frame_indices

NAME = "decord"


def decode(source: bytes | str | os.PathLike, num_frames: int, *, key: str, short_side: int | None) -> torch.Tensor:
    """Decode ``num_frames`` uniformly sampled RGB frames; see :func:`lvlm.data.decoding.decode_video`.

    Shapes: returns uint8 ``[t, h, w, 3]``.
    """
    import decord
    from decord._ffi.base import DECORDError

    uri = io.BytesIO(source) if isinstance(source, (bytes, bytearray, memoryview)) else os.fspath(source)
    try:
        reader = decord.VideoReader(uri, ctx=decord.cpu(0), num_threads=1)
        total = len(reader)
        if total < 1:
            raise VideoDecodeError(key, source, "the video stream has no frames")
        frames = torch.from_numpy(reader.get_batch(uniform_frame_indices(total, num_frames)).asnumpy())
        reader.seek(0)  # releases decoder buffers (decord issue #197)
    except (DECORDError, RuntimeError) as err:
        if "DECORDArrayCopyFromTo" in str(err):  # decord's buffer-size bug on a valid video
            return pyav_backend.decode(source, num_frames, key=key, short_side=short_side)
        raise VideoDecodeError(key, source, f"{type(err).__name__}: {str(err).splitlines()[0][:300]}") from err
    return resize_frames(frames, short_side)


def resize_frames(frames: torch.Tensor, short_side: int | None) -> torch.Tensor:
    """Resize uint8 ``[t, h, w, 3]`` frames so the short side is ``short_side`` (never upscales)."""
    height, width = frames.shape[1:3]
    new_width, new_height = reduced_size(width, height, short_side)
    if (new_width, new_height) == (width, height):
        return frames
    # torchvision's uint8 antialiased bilinear kernel: no float copy of full-size frames
    import torchvision.transforms.v2.functional as TF  # noqa: N812 (lazy: a slow import for every command)

    out = TF.resize(frames.permute(0, 3, 1, 2), [new_height, new_width], antialias=True)
    return out.permute(0, 2, 3, 1).contiguous()
