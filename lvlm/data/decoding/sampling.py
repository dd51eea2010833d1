"""Which frames of a video to decode."""

from __future__ import annotations

import numpy as np


def uniform_frame_indices(total_frames: int, num_frames: int) -> list[int]:
    """Indices of ``num_frames`` frames spread uniformly over a video, first and last frame included.

    This is the original Video-LLaVA's ``np.linspace(0, total_frames - 1, num_frames, dtype=int)``. A video
    shorter than ``num_frames`` gets repeated indices (``total_frames=3, num_frames=8`` gives
    ``[0, 0, 0, 0, 1, 1, 1, 2]``), so every video yields exactly ``num_frames`` frames.

    Args:
        total_frames: Number of frames in the video (at least 1).
        num_frames: Number of frames wanted (at least 1). With ``num_frames=1`` the first frame is taken.

    Returns:
        ``num_frames`` non-decreasing indices in ``[0, total_frames - 1]``.

    Raises:
        ValueError: If either count is below 1.
    """
    if total_frames < 1:
        raise ValueError(f"cannot sample frames from a video with {total_frames} frames")
    if num_frames < 1:
        raise ValueError(f"num_frames must be at least 1, got {num_frames}")
    return np.linspace(0, total_frames - 1, num_frames).astype(int).tolist()


def reduced_size(width: int, height: int, short_side: int | None) -> tuple[int, int]:
    """``(width, height)`` scaled so that the short side is ``short_side``, aspect ratio kept; never upscales."""
    if short_side is None or min(width, height) <= short_side:
        return width, height
    if width <= height:
        return short_side, max(1, round(height * short_side / width))
    return max(1, round(width * short_side / height)), short_side
