"""Real media files for data tests, written with PyAV and PIL (no mocks).

Import the helpers (``from media_fixtures import write_mp4, write_image, moving_square_frames``) or use the
pytest fixtures by importing them into a test module (``from media_fixtures import media_dir  # noqa: F401``).
"""

from __future__ import annotations

import io
import tempfile
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image


def moving_square_frames(num_frames: int, size: tuple[int, int], *, seed: int = 0) -> np.ndarray:
    """Smooth test frames: a colour gradient whose tint changes over time and a white square moving right.

    Args:
        num_frames: Number of frames ``t``.
        size: ``(width, height)``.
        seed: Seed of the mild noise added to every frame (keeps x264 from collapsing frames).

    Returns:
        uint8 ``[t, h, w, 3]``.
    """
    width, height = size
    rng = np.random.default_rng(seed)
    frames = np.zeros((num_frames, height, width, 3), np.uint8)
    side = max(2, min(width, height) // 4)
    for i in range(num_frames):
        frames[i, ..., 0] = np.linspace(0, 255, width, dtype=np.uint8)[None, :]
        frames[i, ..., 1] = np.linspace(0, 255, height, dtype=np.uint8)[:, None]
        frames[i, ..., 2] = (40 + 200 * i // max(1, num_frames - 1)) % 256
        x = (i * max(1, (width - side) // max(1, num_frames - 1))) % max(1, width - side)
        frames[i, height // 3 : height // 3 + side, x : x + side] = 255
    noise = rng.integers(-6, 7, frames.shape)
    return np.clip(frames.astype(np.int16) + noise, 0, 255).astype(np.uint8)


def encode_video(
    frames: np.ndarray,
    container_format: str = "mp4",
    codec: str = "libx264",
    fps: int = 25,
    gop: int = 12,
    options: dict[str, str] | None = None,
    rotation: int = 0,
) -> bytes:
    """Encode uint8 ``[t, h, w, 3]`` frames (even sizes) in any container/codec PyAV writes (mp4, matroska,
    webm with libvpx-vp9, avi with mpeg4, ...). x264 gets 2 B-frames, the way a camera file looks.
    ``options`` go to the muxer (e.g. ``{"movflags": "faststart"}``, which needs a real file: handled here).
    ``rotation`` (degrees counter-clockwise) is written as the display matrix, as a phone writes it."""
    if options:
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / f"video.{container_format}"
            _encode_into(str(path), frames, container_format, codec, fps, gop, options, rotation)
            return path.read_bytes()
    buffer = io.BytesIO()
    _encode_into(buffer, frames, container_format, codec, fps, gop, None, rotation)
    return buffer.getvalue()


def _encode_into(
    target: str | io.BytesIO,
    frames: np.ndarray,
    container_format: str,
    codec: str,
    fps: int,
    gop: int,
    options: dict[str, str] | None,
    rotation: int = 0,
) -> None:
    with av.open(target, mode="w", format=container_format, options=options or {}) as container:
        stream = container.add_stream(codec, rate=fps)
        stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
        stream.codec_context.gop_size = gop
        if rotation:
            stream.set_display_rotation(rotation)
        if codec == "libx264":
            stream.codec_context.options = {"preset": "veryfast", "bf": "2"}
        elif codec == "libx265":
            stream.codec_context.options = {"preset": "veryfast", "x265-params": "log-level=error"}
        else:  # other encoders default to low bitrates that smear these small frames
            stream.codec_context.bit_rate = 4_000_000
        for image in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
        container.mux(stream.encode(None))


def encode_h264(frames: np.ndarray, fps: int = 25, gop: int = 12, container_format: str = "mp4") -> bytes:
    """H.264 with B-frames in an mp4 (or another container): :func:`encode_video` with libx264."""
    return encode_video(frames, container_format, "libx264", fps=fps, gop=gop)


def write_mp4(
    path: str | Path, frames: int | np.ndarray = 8, size: tuple[int, int] = (64, 48), fps: int = 25, gop: int = 12
) -> Path:
    """Write an H.264 mp4 to ``path``: ``frames`` given as an array, or a frame count for moving-square frames.

    Returns the path.
    """
    array = moving_square_frames(frames, size) if isinstance(frames, int) else frames
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(encode_h264(array, fps=fps, gop=gop))
    return path


def make_image(size: tuple[int, int] = (40, 30), mode: str = "RGB") -> Image.Image:
    """A gradient image of ``size`` (width, height) in PIL ``mode`` (RGB, L, CMYK, P, RGBA, LA, ...)."""
    width, height = size
    rgb = np.zeros((height, width, 3), np.uint8)
    rgb[..., 0] = np.linspace(0, 255, width, dtype=np.uint8)[None, :]
    rgb[..., 1] = np.linspace(255, 0, height, dtype=np.uint8)[:, None]
    rgb[..., 2] = 90
    image = Image.fromarray(rgb, mode="RGB")
    if mode == "P":
        return image.quantize(colors=16)
    if mode in {"RGBA", "LA"}:
        alpha = Image.fromarray(np.tile(np.linspace(0, 255, width, dtype=np.uint8)[None, :], (height, 1)), "L")
        converted = image.convert(mode)
        converted.putalpha(alpha)
        return converted
    return image.convert(mode)


def image_bytes(size: tuple[int, int] = (40, 30), fmt: str = "jpeg", mode: str = "RGB") -> bytes:
    """Encoded bytes of :func:`make_image` in ``fmt`` (jpeg, png, webp, ...)."""
    buffer = io.BytesIO()
    make_image(size, mode).save(buffer, format=fmt.upper().replace("JPG", "JPEG"))
    return buffer.getvalue()


def write_image(path: str | Path, size: tuple[int, int] = (40, 30), fmt: str | None = None, mode: str = "RGB") -> Path:
    """Write an image file; the format defaults to the path's extension. Returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(image_bytes(size, fmt or path.suffix.lstrip("."), mode))
    return path


def make_media_dir(root: str | Path) -> Path:
    """Write ``images/{a.jpg (40x30), b.png (32x32), c.webp (30x40)}`` and ``videos/{v8.mp4 (8 frames, 64x48),
    v3.mp4 (3 frames, 48x64)}`` under ``root``. Returns ``root``."""
    root = Path(root)
    write_image(root / "images" / "a.jpg", (40, 30))
    write_image(root / "images" / "b.png", (32, 32))
    write_image(root / "images" / "c.webp", (30, 40))
    write_mp4(root / "videos" / "v8.mp4", 8, (64, 48))
    write_mp4(root / "videos" / "v3.mp4", 3, (48, 64))
    return root


@pytest.fixture
def media_dir(tmp_path: Path) -> Path:
    """A temporary folder filled by :func:`make_media_dir`."""
    return make_media_dir(tmp_path / "media")
