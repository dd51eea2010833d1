"""Writing videos: H.264 mp4 from frames, re-encoding to a small size with short keyframe intervals.

Short GOPs keep seeking cheap (a decoder starts from the keyframe before each sampled frame), and a small
short side makes decoding cheap: together they take video decoding out of the training hot path
(ecosystem-notes §4.3).
"""

from __future__ import annotations

import io
import itertools
import os
from collections.abc import Iterator
from fractions import Fraction

import av
import numpy as np
import torch

from lvlm.data.decoding.errors import VideoDecodeError
from lvlm.data.decoding.pyav_backend import open_container, quarter_turns, upright_rgb
from lvlm.data.decoding.sampling import reduced_size

# mbtree=0: with MB-tree rate control on, x264's AVX-512 code reads uninitialised memory, so the same frames were
# coded a little differently now and then, depending on what the heap held: under load, 19 of 100 world clips gave
# 2-21 outputs in 60 encodes each, and re-encodes of 24-frame clips 17-29 outputs in 40. With MB-tree off (or x264
# held to AVX2) every clip gives one output. Costs some bitrate (world clips ~15 % larger, a bit closer to the input).
X264_PARAMS = "keyint={gop}:scenecut=0:mbtree=0"


def encode_mp4(
    frames: np.ndarray | torch.Tensor, *, fps: float = 8, gop: int = 8, crf: int = 18, preset: str = "veryfast"
) -> bytes:
    """Encode RGB frames as an H.264 (yuv420p) mp4.

    The same input gives the same bytes, from any thread and under any load: x264 runs single-threaded with MB-tree
    rate control off (:data:`X264_PARAMS`: its AVX-512 code read uninitialised memory, which made a few blocks
    of some clips come out otherwise now and then), and the mp4 is muxed bit-exact.

    Args:
        frames: uint8 ``[t, h, w, 3]`` RGB frames; odd sizes are cropped by one pixel (yuv420p needs even).
        fps: Frame rate written to the stream.
        gop: Keyframe interval in frames.
        crf: x264 quality (lower is better; 18 is visually lossless).
        preset: x264 speed preset.

    Returns:
        The mp4 file as bytes.
    """
    array = frames.numpy() if isinstance(frames, torch.Tensor) else np.asarray(frames)
    if array.ndim != 4 or array.shape[-1] != 3 or array.dtype != np.uint8 or len(array) == 0:
        raise ValueError(f"encode_mp4 wants uint8 frames [t, h, w, 3] with t >= 1, got {array.dtype} {array.shape}")
    height, width = array.shape[1] // 2 * 2, array.shape[2] // 2 * 2
    return write_mp4_stream(iter(array[:, :height, :width]), width, height, fps=fps, gop=gop, crf=crf, preset=preset)


def write_mp4_stream(
    frames: Iterator[np.ndarray], width: int, height: int, *, fps: float, gop: int, crf: int, preset: str = "veryfast"
) -> bytes:
    """Encode an iterator of uint8 ``[h, w, 3]`` RGB frames (even ``width``/``height``) to H.264 mp4 bytes.

    Frames are encoded as they come, so a long video is never held in memory. Returns b"" for no frames.
    """
    buffer = io.BytesIO()
    count = 0
    with av.open(buffer, mode="w", format="mp4", options={"fflags": "+bitexact"}) as container:
        stream = container.add_stream("libx264", rate=Fraction(fps).limit_denominator(1001))
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.codec_context.gop_size = gop
        stream.codec_context.thread_count = 1  # one x264 thread (and one swscale thread for the RGB -> YUV step)
        stream.codec_context.options = {"crf": str(crf), "preset": preset, "x264-params": X264_PARAMS.format(gop=gop)}
        for image in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")))
            count += 1
        container.mux(stream.encode(None))
    return buffer.getvalue() if count else b""


def reencode_video(
    source: bytes | str | os.PathLike, *, short_side: int, gop: int = 8, crf: int = 23, key: str = "?"
) -> bytes:
    """Re-encode a video to H.264 mp4 with its short side at most ``short_side`` and keyframes every ``gop``.

    All frames are kept at the source frame rate; audio is dropped.

    Raises:
        VideoDecodeError: If the source cannot be decoded or has no frames.
    """
    try:
        with open_container(source) as container:
            stream = container.streams.video[0]
            rate = float(stream.average_rate or stream.guessed_rate or 25)
            width, height = reduced_size(stream.codec_context.width, stream.codec_context.height, short_side)
            width, height = max(2, width // 2 * 2), max(2, height // 2 * 2)
            decoded = container.decode(stream)
            first = next(decoded, None)
            # Frames are written upright (a phone video's display rotation applied): the copy needs no matrix.
            if first is not None and quarter_turns(first) % 2:
                out_width, out_height = height, width
            else:
                out_width, out_height = width, height
            frames = (upright_rgb(f, (width, height)) for f in itertools.chain([first] if first else [], decoded))
            data = write_mp4_stream(frames, out_width, out_height, fps=rate, gop=gop, crf=crf)
    except (av.FFmpegError, IndexError, EOFError, OSError) as err:
        raise VideoDecodeError(key, source, f"{type(err).__name__}: {err}") from err
    if not data:
        raise VideoDecodeError(key, source, "the video stream has no frames")
    return data
