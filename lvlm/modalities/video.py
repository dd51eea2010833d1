"""Videos: ``mp4``/``webm``/... members or frames stored as images, ``num_frames`` uniformly sampled frames,
``[n, t, 3, s, s]`` batches; one tower pass per frame, tokens per frame."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from lvlm.data.decoding import decode_frames, decode_video
from lvlm.data.transforms import VideoTransform
from lvlm.modalities.base import Modality
from lvlm.modalities.image import IMAGE_EXTENSIONS

VIDEO_EXTENSIONS = ("mp4", "webm", "mkv", "mov", "avi", "gif")
_FRAME = re.compile(r"^(?:(?P<index>\d+)\.)?frames\.(?P<frame>\d+)\.(?P<ext>[a-z0-9]+)$")


class VideoModality(Modality):
    """Videos (``<video>``): a file per item, or its frames as ``frames.N.jpg`` members.

    Args:
        tower: factory of the video tower.
        token: the placeholder token (``<video>`` under the name ``video``).
    """

    extensions = VIDEO_EXTENSIONS
    uses_frames = True

    def member_index(self, member: str) -> tuple[int | None, int | None] | None:
        match = _FRAME.match(member.lower())
        if match is not None and match["ext"] in IMAGE_EXTENSIONS:
            return (None if match["index"] is None else int(match["index"])), int(match["frame"])
        return super().member_index(member)

    def decode(self, payload: Any, *, key: str, num_frames: int, backend: str | None = None) -> Any:
        side = self.tower_facts.preprocessing.size
        if isinstance(payload, list) or (not isinstance(payload, bytes) and Path(payload).is_dir()):
            return decode_frames(payload, num_frames, key=key, short_side=side)
        return decode_video(payload, num_frames, key=key, short_side=side, backend=backend)

    def make_transform(
        self, *, augment: bool = False, seed: int | None = None, normalize: bool = True
    ) -> Callable[[Any], torch.Tensor]:
        pre = self.tower_facts.preprocessing
        return VideoTransform(pre.size, pre.mean, pre.std, augment=augment, seed=seed, normalize=normalize)
