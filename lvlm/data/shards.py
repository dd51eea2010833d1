"""The conversion of one Video-LLaVA/LLaVA JSON record to a shard sample (and the shard writer, re-exported).

The member layout is :mod:`lvlm.data.sample_format` (re-exported here: :func:`media_members`); the atomic
shard writer is :mod:`lvlm.data.shard_writer` (re-exported here: :class:`ShardWriter`).
"""

from __future__ import annotations

import io
import json
import re
from pathlib import Path
from typing import Any

from PIL import Image

from lvlm.data.decoding import MediaDecodeError, decode_image, decode_video
from lvlm.data.decoding.encoding import reencode_video
from lvlm.data.decoding.pyav_backend import decode as pyav_decode
from lvlm.data.sample_format import (
    IMAGE_EXTENSIONS,
    VIDEO_EXTENSIONS,
    count_placeholders,
    media_members,
    member_name,
)
from lvlm.data.shard_writer import ShardWriter

__all__ = ["ShardWriter", "SkippedSample", "convert_record", "convert_safely", "media_members", "sanitize_key"]


def encode_json(value: Any) -> bytes:
    """UTF-8 JSON bytes of a sample's ``json`` member."""
    return json.dumps(value, ensure_ascii=False).encode("utf-8")


def sanitize_key(raw: object, used: set[str]) -> str:
    """A dot-free, unique shard key from a record id (WebDataset splits member names at the first dot).

    Characters other than letters, digits, ``-`` and ``_`` become ``_``; a repeated key gets ``-1``, ``-2``...
    The key is added to ``used``.
    """
    key = re.sub(r"[^A-Za-z0-9_-]", "_", str(raw)).strip("_") or "sample"
    unique, n = key, 0
    while unique in used:
        n += 1
        unique = f"{key}-{n}"
    used.add(unique)
    return unique


class SkippedSample(Exception):
    """A record that cannot become a sample; ``reason`` is a short code counted in the report."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason, self.detail = reason, detail

    def __reduce__(self) -> tuple[type, tuple[str, str]]:  # crosses process boundaries (lvlm shards --workers)
        return SkippedSample, (self.reason, self.detail)


def convert_record(
    record: Any,
    key: str,
    *,
    image_folder: Path | None,
    video_folder: Path | None,
    reencode: int | None = None,
    frames: int | None = None,
) -> dict[str, Any]:
    """Turn one record of a Video-LLaVA/LLaVA JSON list into a shard sample (see docs/data-format.md).

    Args:
        record: ``{"id", "image": str | list, "video": str | list, "conversations": [...]}``.
        key: The sample's (already sanitised, unique) key.
        image_folder: Folder that ``image`` paths are relative to.
        video_folder: Folder that ``video`` paths are relative to.
        reencode: Re-encode videos to H.264 with this short side and keyframes every 8 frames.
        frames: Store this many uniformly sampled frames (JPEG) per video instead of the video.

    Returns:
        ``{"__key__": key, "json": bytes, <media members>: bytes}``.

    Raises:
        SkippedSample: With reason ``bad_json``, ``placeholder_mismatch``, ``missing_file``, ``path_escape``,
            ``bad_path``, ``unreadable_media``, ``unsupported_format`` or ``undecodable_media``.
    """
    conversations = _checked_conversations(record)
    images, videos = _paths(record, "image"), _paths(record, "video")
    n_images, n_videos = count_placeholders(conversations)
    if (n_images, n_videos) != (len(images), len(videos)):
        raise SkippedSample(
            "placeholder_mismatch",
            f"{n_images} <image> and {n_videos} <video> placeholders but {len(images)} images and {len(videos)} videos",
        )
    sample: dict[str, Any] = {"__key__": key}
    for i, rel in enumerate(images):
        data, ext = _image_member(resolve_media(image_folder, rel, "image"), key)
        sample[member_name("image", i, len(images), ext)] = data
    for i, rel in enumerate(videos):
        path = resolve_media(video_folder, rel, "video")
        if frames:
            for j, jpeg in enumerate(_frame_members(path, frames, key)):
                sample[member_name("frames", i, len(videos), "jpg", frame=j)] = jpeg
        else:
            data, ext = _video_member(path, key, reencode)
            sample[member_name("video", i, len(videos), ext)] = data
    meta = {"id": record.get("id"), "conversations": conversations, "source": {"image": images, "video": videos}}
    sample["json"] = encode_json(
        meta | {k: v for k, v in record.items() if k not in {"id", "image", "video", "conversations"}}
    )
    return sample


def resolve_media(folder: Path | None, rel: str, kind: str) -> Path:
    """``folder / rel``, refusing paths that leave ``folder`` (``../x.jpg``, absolute paths, symlinks out).

    A path the filesystem cannot follow (a symlink loop, a NUL byte, an over-long name) or that is not a
    regular file (a folder, a FIFO, a device) is a :class:`SkippedSample`, never an exception of its own.
    """
    if folder is None:
        raise SkippedSample("missing_file", f"{kind} {rel!r} given but no --{kind}-folder")
    try:
        root = folder.resolve()
        path = (root / rel).resolve()
        if not path.is_relative_to(root):
            raise SkippedSample("path_escape", f"{kind} path {rel!r} resolves to {path}, outside {root}")
        if not path.is_file():
            raise SkippedSample("missing_file", f"{kind} file {path} does not exist or is not a regular file")
    except (OSError, ValueError, RuntimeError) as err:  # ELOOP, ENAMETOOLONG, NUL byte; 3.11 raises RuntimeError
        raise SkippedSample("bad_path", f"{kind} path {rel!r:.200} cannot be followed: {err}") from err
    return path


def read_media(path: Path) -> bytes:
    """The bytes of a media file; an unreadable file (permissions, I/O error) is a :class:`SkippedSample`."""
    try:
        return path.read_bytes()
    except OSError as err:
        raise SkippedSample("unreadable_media", f"{path}: {err.strerror or err}") from err


def convert_safely(record: Any, key: str, **options: Any) -> dict[str, Any] | SkippedSample:
    """:func:`convert_record`, returning the reason instead of raising: no record can stop a conversion.

    Anything other than a :class:`SkippedSample` (a decoder crash, a library bug) becomes reason
    ``conversion_error`` with the exception's type and message.
    """
    try:
        return convert_record(record, key, **options)
    except SkippedSample as skip:
        return skip
    except Exception as err:  # noqa: BLE001 - one record never aborts the run; the report says what happened
        return SkippedSample("conversion_error", f"{type(err).__name__}: {err}"[:500])


def _checked_conversations(record: Any) -> list[dict[str, str]]:
    if not isinstance(record, dict):
        raise SkippedSample("bad_json", f"a record must be an object, got {type(record).__name__}")
    turns = record.get("conversations")
    if not isinstance(turns, list) or not turns:
        raise SkippedSample("bad_json", "'conversations' must be a non-empty list")
    for i, turn in enumerate(turns):
        if not (isinstance(turn, dict) and turn.get("from") in ("human", "gpt") and isinstance(turn.get("value"), str)):
            raise SkippedSample(
                "bad_json", f"turn {i} must be {{'from': 'human'|'gpt', 'value': str}}, got {turn!r:.80}"
            )
    return [{"from": t["from"], "value": t["value"]} for t in turns]


def _paths(record: dict[str, Any], field: str) -> list[str]:
    value = record.get(field)
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return list(value)
    raise SkippedSample("bad_json", f"'{field}' must be a path or a list of paths, got {value!r:.80}")


def _image_member(path: Path, key: str) -> tuple[bytes, str]:
    data = read_media(path)
    try:
        image = decode_image(data, key=key)
    except MediaDecodeError as err:
        raise SkippedSample("undecodable_media", f"{path}: {err.reason}") from err
    ext = path.suffix.lower().lstrip(".")
    if ext in IMAGE_EXTENSIONS:
        return data, ext
    buffer = io.BytesIO()  # gif, bmp, tiff...: stored as a high-quality JPEG
    image.save(buffer, format="JPEG", quality=95)
    return buffer.getvalue(), "jpg"


def _video_member(path: Path, key: str, reencode: int | None) -> tuple[bytes, str]:
    ext = path.suffix.lower().lstrip(".")
    try:
        if reencode:
            return reencode_video(path, short_side=reencode, gop=8, key=key), "mp4"
        pyav_decode(path, 1, key=key, short_side=None)  # checks that the file opens and decodes
    except MediaDecodeError as err:
        raise SkippedSample("undecodable_media", f"{path}: {err.reason}") from err
    if ext not in VIDEO_EXTENSIONS:
        raise SkippedSample("unsupported_format", f"{path}: .{ext} is not one of {VIDEO_EXTENSIONS}; use --reencode")
    return read_media(path), ext


def _frame_members(path: Path, num_frames: int, key: str) -> list[bytes]:
    try:
        video = decode_video(path, num_frames, key=key)
    except MediaDecodeError as err:
        raise SkippedSample("undecodable_media", f"{path}: {err.reason}") from err
    jpegs = []
    for frame in video.numpy():
        buffer = io.BytesIO()
        Image.fromarray(frame).save(buffer, format="JPEG", quality=90)
        jpegs.append(buffer.getvalue())
    return jpegs
