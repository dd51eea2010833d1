"""PyAV video backend: seek to the keyframe before each target frame, decode forward to it.

Disposable H.264 pictures on the way are not decoded (about half of a clip's frames with x264 defaults).

Decoding every frame up to the last index (the HF Video-LLaVA README recipe) costs seconds on long videos
(ecosystem-notes §4.3: 2 s for 720p 60 s); seeking costs about one GOP per target. Frame ``i`` is the
``i``-th frame in presentation order, found from the packet timestamps of a demux pass (cheap: no
decoding), which is what decord's index means too, so both backends return the same frames.

Frames come back upright: a video whose display matrix says "rotate" (phone videos) is turned by that many
quarter turns, as decord (the original's decoder) turns it.
"""

from __future__ import annotations

import bisect
import io
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import av
import numpy as np
import torch

from lvlm.data.decoding.disposable import disposable_checker
from lvlm.data.decoding.errors import VideoDecodeError
from lvlm.data.decoding.sampling import reduced_size, uniform_frame_indices

NAME = "pyav"
# FFmpeg also "decodes" single images (jpeg_pipe, png_pipe, image2) and text (tty) as one-frame videos; bytes in
# those formats stored as a video are a data error, not a video.
_NOT_VIDEO_FORMATS = {"tty", "image2", "image2pipe"}


@dataclass
class FrameIndex:
    """Frame count and presentation timestamps (ascending) of one video stream; empty ``pts`` if any is missing."""

    count: int
    pts: list[int]
    keyframe_pts: list[int]


def decode(source: bytes | str | os.PathLike, num_frames: int, *, key: str, short_side: int | None) -> torch.Tensor:
    """Decode ``num_frames`` uniformly sampled RGB frames; see :func:`lvlm.data.decoding.decode_video`.

    Seeks by timestamp; when a container's timestamps do not identify frames (AVI with B-frames, MPEG-TS),
    it decodes sequentially from the start instead, counting frames.

    Shapes: returns uint8 ``[t, h, w, 3]``.
    """
    try:
        with open_container(source) as container:
            stream = container.streams.video[0]
            stream.codec_context.thread_count = 1  # one thread per loader worker is fastest on few cores (§4.3)
            index = read_frame_index(container, stream)
            if index.count == 0:
                raise VideoDecodeError(key, source, "the video stream has no frames")
            wanted = uniform_frame_indices(index.count, num_frames)
            size = reduced_size(stream.codec_context.width, stream.codec_context.height, short_side)
            targets = sorted(set(wanted))
            by_index = seek_and_decode(container, stream, index, targets, size) if index.pts else {}
        if len(by_index) < len(targets):
            with open_container(source) as container:
                by_index = decode_sequentially(container, container.streams.video[0], targets, size)
    except (av.FFmpegError, IndexError, EOFError, OSError) as err:
        raise VideoDecodeError(key, source, f"{type(err).__name__}: {err}") from err
    missing = [i for i in targets if i not in by_index]
    if missing:
        raise VideoDecodeError(key, source, f"frames {missing} of {index.count} could not be decoded")
    return torch.from_numpy(np.stack([by_index[i] for i in wanted]))


def open_container(source: bytes | str | os.PathLike) -> av.container.InputContainer:
    """Open bytes or a path for reading; raises ``IndexError`` when there is no video stream."""
    target = io.BytesIO(source) if isinstance(source, (bytes, bytearray, memoryview)) else os.fspath(source)
    container = av.open(target, mode="r", metadata_errors="ignore")
    names = set(container.format.name.split(","))
    if names & _NOT_VIDEO_FORMATS or any(name.endswith("_pipe") for name in names):
        container.close()
        raise IndexError(f"the data is a {container.format.name!r} file (an image or text), not a video")
    if not container.streams.video:
        container.close()
        raise IndexError("no video stream in the container")
    return container


def read_frame_index(container: av.container.InputContainer, stream: av.VideoStream) -> FrameIndex:
    """Demux (without decoding) all packets of ``stream`` to list frame and keyframe timestamps."""
    pts, keyframe_pts, count = [], [], 0
    for packet in container.demux(stream):
        if packet.size == 0:  # the flush packet at the end of the stream
            continue
        count += 1
        pts.append(packet.pts)
        if packet.is_keyframe:
            keyframe_pts.append(packet.pts)
    container.seek(0, stream=stream)
    if None in pts or not keyframe_pts:
        return FrameIndex(count, [], [])
    return FrameIndex(count, sorted(pts), sorted(keyframe_pts))


def seek_and_decode(
    container: av.container.InputContainer,
    stream: av.VideoStream,
    index: FrameIndex,
    targets: list[int],
    size: tuple[int, int],
) -> dict[int, np.ndarray]:
    """Decode the frames at sorted unique ``targets``, seeking only when a keyframe lies ahead of the decoder.

    Disposable H.264 pictures (non-reference, see :mod:`lvlm.data.decoding.disposable`) that are not targets
    are not decoded at all. Returns a mapping frame index -> uint8 ``[h, w, 3]`` array at ``size`` (width,
    height).
    """
    out: dict[int, np.ndarray] = {}
    wanted = {index.pts[t] for t in targets}
    skippable = disposable_checker(stream.codec_context)
    frames = None
    position = None  # pts of the last decoded frame
    for target in targets:
        target_pts = index.pts[target]
        keyframe = index.keyframe_pts[max(0, bisect.bisect_right(index.keyframe_pts, target_pts) - 1)]
        if frames is None or position is None or keyframe > position:
            container.seek(keyframe, stream=stream, backward=True, any_frame=False)
            frames = _decode_needed(container, stream, wanted, skippable)
        for frame in frames:
            position = frame.pts
            if frame.pts is None or frame.pts < target_pts:
                continue
            if frame.pts == target_pts:
                out[target] = upright_rgb(frame, size)
            break
    return out


def _decode_needed(
    container: av.container.InputContainer,
    stream: av.VideoStream,
    wanted: set[int],
    skippable: Callable[[av.Packet], bool] | None,
) -> Iterator[av.VideoFrame]:
    """Decoded frames from the current position on, leaving out disposable packets whose pts is not wanted."""
    for packet in container.demux(stream):
        if skippable is not None and packet.size and packet.pts not in wanted and skippable(packet):
            continue
        yield from packet.decode()


def decode_sequentially(
    container: av.container.InputContainer, stream: av.VideoStream, targets: list[int], size: tuple[int, int]
) -> dict[int, np.ndarray]:
    """Decode from the start, counting frames, up to the last of the sorted ``targets`` (the slow, sure path)."""
    out: dict[int, np.ndarray] = {}
    wanted = set(targets)
    for ordinal, frame in enumerate(container.decode(stream)):
        if ordinal in wanted:
            out[ordinal] = upright_rgb(frame, size)
        if ordinal >= targets[-1]:
            break
    return out


def upright_rgb(frame: av.VideoFrame, size: tuple[int, int]) -> np.ndarray:
    """uint8 ``[h, w, 3]`` of ``frame`` scaled to ``size`` (coded width, height), then turned upright by the
    rotation its display matrix asks for (counter-clockwise quarter turns, as decord applies it)."""
    rgb = frame.to_ndarray(width=size[0], height=size[1], format="rgb24")
    turns = quarter_turns(frame)
    return np.ascontiguousarray(np.rot90(rgb, turns)) if turns else rgb


def quarter_turns(frame: av.VideoFrame) -> int:
    """Counter-clockwise quarter turns (0-3) that the frame's display matrix asks for."""
    return round((frame.rotation or 0) / 90) % 4
