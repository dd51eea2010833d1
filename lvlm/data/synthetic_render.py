"""Drawing the synthetic world: image scenes on a 3x3 grid, videos of one moving or colour-changing shape.

A scene is the dict :func:`lvlm.data.synthetic.sample_scene` makes; drawing is a pure function of it and the size.

Legend: ``t`` frames.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from PIL import Image, ImageDraw

COLORS = {
    "red": (220, 40, 40),
    "green": (40, 190, 60),
    "blue": (50, 90, 235),
    "yellow": (235, 215, 40),
    "purple": (160, 60, 210),
}
BACKGROUND = (25, 25, 25)


def _draw(draw: ImageDraw.ImageDraw, shape: str, cx: float, cy: float, r: float, color: tuple[int, int, int]) -> None:
    box = (cx - r, cy - r, cx + r, cy + r)
    if shape == "circle":
        draw.ellipse(box, fill=color)
    elif shape == "square":
        draw.rectangle((cx - 0.85 * r, cy - 0.85 * r, cx + 0.85 * r, cy + 0.85 * r), fill=color)
    elif shape == "triangle":
        draw.polygon([(cx, cy - r), (cx + r, cy + 0.8 * r), (cx - r, cy + 0.8 * r)], fill=color)
    else:  # diamond
        draw.polygon([(cx, cy - r), (cx + r, cy), (cx, cy + r), (cx - r, cy)], fill=color)


def render_image(scene: dict[str, Any], size: int) -> Image.Image:
    """Draw an image scene: each object in its cell of a 3x3 grid."""
    image = Image.new("RGB", (size, size), BACKGROUND)
    draw = ImageDraw.Draw(image)
    cell = size / 3
    for color, shape, index in scene["objects"]:
        cx, cy = (index % 3 + 0.5) * cell, (index // 3 + 0.5) * cell
        _draw(draw, shape, cx, cy, cell * 0.4, COLORS[color])
    return image


def video_positions(scene: dict[str, Any], size: int, num_frames: int) -> list[tuple[float, float]]:
    """Centre ``(x, y)`` of the shape in each frame; a move crosses 60 % of the frame."""
    start, end = 0.2 * size, 0.8 * size
    across = scene["offset"] * size
    if scene["event"] != "move":
        return [(across, across)] * num_frames
    steps = (
        np.linspace(start, end, num_frames)
        if scene["direction"] in ("right", "down")
        else np.linspace(end, start, num_frames)
    )
    horizontal = scene["direction"] in ("left", "right")
    return [(float(s), across) if horizontal else (across, float(s)) for s in steps]


def render_video(scene: dict[str, Any], size: int, num_frames: int) -> np.ndarray:
    """Draw a video scene. Returns uint8 ``[t, size, size, 3]``; a colour change happens at the middle frame."""
    frames = []
    for t, (cx, cy) in enumerate(video_positions(scene, size, num_frames)):
        image = Image.new("RGB", (size, size), BACKGROUND)
        color = scene["color"] if t < num_frames // 2 else scene["end_color"]
        _draw(ImageDraw.Draw(image), scene["shape"], cx, cy, size * 0.13, COLORS[color])
        frames.append(np.asarray(image))
    return np.stack(frames)
