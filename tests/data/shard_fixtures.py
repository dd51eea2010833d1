"""Real WebDataset shards for DataModule tests: good samples of every modality and one of each kind of bad sample.

Written with `webdataset.TarWriter`, real H.264 mp4 (PyAV) and JPEG (PIL) members; no mocks.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import webdataset as wds
from media_fixtures import encode_h264, image_bytes, moving_square_frames
from tokenizer_fixtures import tiny_modalities, tiny_tokenizer

from lvlm.data.datamodule import LVLMDataModule
from lvlm.data.settings import DataSources, LoaderSettings, MediaSettings, Sampling

VIDEO = encode_h264(moving_square_frames(8, (32, 24)))
JPEG = image_bytes((20, 16))


def conv(question: str, answer: str) -> dict[str, Any]:
    return {"conversations": [{"from": "human", "value": question}, {"from": "gpt", "value": answer}]}


def good_samples(prefix: str, count: int) -> list[dict[str, Any]]:
    """`count` valid samples cycling through image, video, text-only, image+video and video-as-frames."""
    out = []
    for i in range(count):
        key = f"{prefix}{i:04d}"
        kind = i % 5
        if kind == 0:
            out.append({"__key__": key, "jpg": JPEG, "json": conv("<image>\nwhat colour?", f"red {i}")})
        elif kind == 1:
            out.append({"__key__": key, "mp4": VIDEO, "json": conv("<video>\nhow does it move?", f"left {i}")})
        elif kind == 2:
            out.append({"__key__": key, "json": conv("how many?", f"two {i}")})
        elif kind == 3:
            out.append({"__key__": key, "jpg": JPEG, "mp4": VIDEO, "json": conv("<video><image>\nsame?", f"yes {i}")})
        else:
            frames = {f"frames.{j}.jpg": JPEG for j in range(3)}
            out.append({"__key__": key, **frames, "json": conv("<video>\nwhat is it?", f"square {i}")})
    return out


LONG_QUESTION = " ".join(["describe the small blue triangle on the background"] * 12)

BAD_SAMPLES: dict[str, tuple[dict[str, Any], str]] = {
    "truncated_mp4": ({"mp4": VIDEO[: len(VIDEO) // 3], "json": conv("<video>\nwhat?", "left")}, "undecodable_video"),
    "zero_byte_mp4": ({"mp4": b"", "json": conv("<video>\nwhat?", "left")}, "undecodable_video"),
    "text_as_mp4": (
        {"mp4": b"this is not a video at all" * 20, "json": conv("<video>\nwhat?", "up")},
        "undecodable_video",
    ),
    "corrupt_jpeg": ({"jpg": JPEG[:40] + b"\x00" * 40, "json": conv("<image>\nwhat?", "red")}, "undecodable_image"),
    "missing_member": ({"json": conv("<video>\nwhat?", "left")}, "missing_media"),
    "wrong_json": ({"jpg": JPEG, "json": {"conversations": {"from": "human", "value": "<image>"}}}, "bad_json"),
    "not_json": ({"json": b"{not json"}, "bad_json"),
    "two_images_one_marker": (
        {"0.jpg": JPEG, "1.jpg": JPEG, "json": conv("<image>\nwhat?", "red")},
        "placeholder_mismatch",
    ),
    "over_long": ({"jpg": JPEG, "json": conv(f"<image>\n{LONG_QUESTION}", "red")}, "too_long"),
}


def bad_samples() -> list[dict[str, Any]]:
    """One sample per kind of bad input; the key names the kind."""
    return [{"__key__": f"bad_{name}", **sample} for name, (sample, _) in BAD_SAMPLES.items()]


def write_shards(directory: Path, name: str, shards: Sequence[Sequence[dict[str, Any]]]) -> str:
    """Writes one tar per list of samples; returns a brace pattern matching them."""
    directory.mkdir(parents=True, exist_ok=True)
    for i, samples in enumerate(shards):
        with wds.TarWriter(str(directory / f"{name}-{i:03d}.tar")) as sink:
            for sample in samples:
                sink.write(sample)
    return str(directory / f"{name}-{{000..{len(shards) - 1:03d}}}.tar")


TINY_SETTINGS: dict[str, dict[str, Any]] = {
    "sampling": {"batches_per_epoch": 4, "shuffle_buffer": 8},
    "media": {"num_frames": 4},
    "loader": {"batch_size": 2},
}
"""The test data module's settings, by group, under what a test gives."""
GROUP_TYPES = {"sources": DataSources, "sampling": Sampling, "media": MediaSettings, "loader": LoaderSettings}


def make_datamodule(run_dir: Path, **arguments: Any) -> LVLMDataModule:
    """A DataModule with the tiny tokenizer, 16-pixel modalities, 4 frames and 64 tokens.

    Arguments are `LVLMDataModule`'s; a group (`sources`, `sampling`, `media`, `loader`) is given as a dict of the
    fields it changes over `TINY_SETTINGS` (`loader={"batch_size": 3}`).
    """
    settings: dict[str, Any] = {
        "tokenizer": tiny_tokenizer(),
        "modalities": {m.name: m for m in tiny_modalities(image_tokens=4, frame_tokens=3, size=16)},
        "max_length": 64,
        "run_dir": str(run_dir),
    }
    settings |= arguments
    for group, kind in GROUP_TYPES.items():
        settings[group] = kind(**TINY_SETTINGS.get(group, {}) | settings.get(group, {}))
    return LVLMDataModule(**settings)
