"""Videos: ``mp4``/``webm``/... members or frames stored as images, ``num_frames`` uniformly sampled frames,
``[n, t, c, h, w]`` batches (the tower's channels and size); one tower pass per frame, tokens per frame."""

from __future__ import annotations

import io
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from PIL import Image

from lvlm.data.decoding import decode_frames, decode_video
from lvlm.data.decoding.encoding import reencode_video
from lvlm.data.decoding.pyav_backend import decode as pyav_decode
from lvlm.data.transforms import VideoTransform
from lvlm.modalities.image import IMAGE_EXTENSIONS
from lvlm.models.modality import Modality

VIDEO_EXTENSIONS = ("mp4", "webm", "mkv", "mov", "avi", "gif")
_FRAME = re.compile(r"^(?:(?P<index>\d+)\.)?frames\.(?P<frame>\d+)\.(?P<ext>[a-z0-9]+)$")


class VideoModality(Modality):
    """Videos (``<video>``): a file per item, or its frames as ``frames.N.jpg`` members.

    Args:
        tower: factory of the video tower.
        token: the placeholder token (``<video>`` under the name ``video``).
    """

    extensions = VIDEO_EXTENSIONS
    file_extensions = VIDEO_EXTENSIONS
    uses_frames = True
    marker_rank = 0  # the original writes video markers first

    def member_index(self, member: str) -> tuple[int | None, int | None] | None:
        match = _FRAME.match(member.lower())
        if match is not None and match["ext"] in IMAGE_EXTENSIONS:
            return (None if match["index"] is None else int(match["index"])), int(match["frame"])
        return super().member_index(member)

    def shard_members(
        self, path: Path, index: int, count: int, key: str, *, reencode: int | None = None, frames: int | None = None
    ) -> dict[str, bytes]:
        """The video file as it is, re-encoded to H.264 (``reencode``: short side, GOP 8), or ``frames`` JPEGs.

        Raises:
            MediaDecodeError: the file does not decode.
            ValueError: an extension lvlm does not read, and no ``reencode``.
        """
        prefix = f"{index}." if count > 1 else ""
        if frames:
            return {f"{prefix}frames.{j}.jpg": jpeg for j, jpeg in enumerate(_frame_jpegs(path, frames, key))}
        if reencode:
            return {f"{prefix}mp4": reencode_video(path, short_side=reencode, gop=8, key=key)}
        pyav_decode(path, 1, key=key, short_side=None)  # checks that the file opens and decodes
        ext = path.suffix.lower().lstrip(".")
        if ext not in self.extensions:
            raise ValueError(f"{path}: .{ext} is not one of {self.extensions}; use --reencode")
        return {f"{prefix}{ext}": path.read_bytes()}

    def decode(self, payload: Any, *, key: str, num_frames: int, backend: str | None = None) -> Any:
        pre = self.tower_facts.preprocessing
        side = max(pre.height, pre.width)  # decoded frames cover the tower's input whatever its aspect ratio
        if isinstance(payload, list) or (not isinstance(payload, bytes) and Path(payload).is_dir()):
            return decode_frames(payload, num_frames, key=key, short_side=side)
        return decode_video(payload, num_frames, key=key, short_side=side, backend=backend)

    def make_transform(
        self, *, augment: bool = False, seed: int | None = None, normalize: bool = True
    ) -> Callable[[Any], torch.Tensor]:
        pre = self.tower_facts.preprocessing
        return VideoTransform(pre.size, pre.mean, pre.std, augment=augment, seed=seed, normalize=normalize)


def _frame_jpegs(path: Path, num_frames: int, key: str) -> list[bytes]:
    jpegs = []
    for frame in decode_video(path, num_frames, key=key).numpy():
        buffer = io.BytesIO()
        Image.fromarray(frame).save(buffer, format="JPEG", quality=90)
        jpegs.append(buffer.getvalue())
    return jpegs
