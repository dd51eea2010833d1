"""`lvlm shards` end to end on real files: JSON + folders -> tars read back with webdataset."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import webdataset as wds

from lvlm.apps.shards import main
from lvlm.core.errors import UserError
from lvlm.data.decoding import decode_frames, decode_image, decode_video
from lvlm.data.sample_errors import SampleFormatError
from lvlm.data.shards import ShardWriter, media_members, sanitize_key
from lvlm.modalities import ImageModality, VideoModality
from tests.data.media_fixtures import image_bytes, make_media_dir, write_mp4

MODALITIES = [ImageModality(tower=None).bind("image"), VideoModality(tower=None).bind("video")]


@pytest.fixture
def media_dir(tmp_path: Path) -> Path:
    return make_media_dir(tmp_path / "media")


def _turns(human: str, answer: str = "ok") -> list[dict[str, str]]:
    return [{"from": "human", "value": human}, {"from": "gpt", "value": answer}]


def _read(out: Path) -> dict[str, dict]:
    urls = sorted(str(p) for p in out.glob("*.tar"))
    return {s["__key__"]: s for s in wds.WebDataset(urls, shardshuffle=False, empty_check=False)}


def _records() -> list[dict]:
    return [
        {"id": "img.1", "image": "a.jpg", "conversations": _turns("<image>\nWhat is it?")},
        {"id": "two/imgs", "image": ["b.png", "c.webp"], "conversations": _turns("<image><image>\nCompare.")},
        {"id": "vid", "video": "v8.mp4", "conversations": _turns("<video>\nDescribe.", "a square")},
        {"id": "both", "video": "v3.mp4", "image": "a.jpg", "conversations": _turns("<video>\n<image>\nSame?")},
        {"id": "text", "conversations": _turns("Hello?", "Hi.")},
        {"id": "img.1", "image": "a.jpg", "conversations": _turns("<image>\nAgain?")},  # duplicate id
    ]


def _bad_records() -> list[dict]:
    return [
        {"id": "missing", "image": "nope.jpg", "conversations": _turns("<image>\nx")},
        {"id": "escape", "image": "../secret.jpg", "conversations": _turns("<image>\nx")},
        {"id": "absolute", "image": "/etc/hostname", "conversations": _turns("<image>\nx")},
        {"id": "mismatch", "image": "a.jpg", "conversations": _turns("no placeholder")},
        {"id": "bad_video", "video": "fake.mp4", "conversations": _turns("<video>\nx")},
        {"id": "bad_image", "image": "broken.jpg", "conversations": _turns("<image>\nx")},
        {"id": "shape", "conversations": "not a list"},
        {"id": "role", "conversations": [{"from": "system", "value": "x"}]},
    ]


def _run(media: Path, records: list, out: Path, *extra: str) -> int:
    (media / "data.json").write_text(json.dumps(records))
    args = [str(media / "data.json"), "--image-folder", str(media / "images"), "--video-folder", str(media / "videos")]
    return main([*args, "--out", str(out), *extra])


def test_converts_json_and_folders_into_readable_shards(media_dir, tmp_path):
    out = tmp_path / "shards"
    assert _run(media_dir, _records(), out, "--max-count", "4") == 0
    assert sorted(p.name for p in out.iterdir()) == [
        "manifest.json", "report.json", "shard-000000.tar", "shard-000001.tar", "skipped.jsonl"
    ]  # fmt: skip
    samples = _read(out)
    assert sorted(samples) == ["both", "img_1", "img_1-1", "text", "two_imgs", "vid"]
    one = samples["img_1"]
    assert sorted(k for k in one if not k.startswith("__")) == ["jpg", "json"]
    assert one["jpg"] == (media_dir / "images" / "a.jpg").read_bytes()
    meta = json.loads(one["json"])
    assert meta["id"] == "img.1" and meta["conversations"] == _turns("<image>\nWhat is it?")
    assert meta["source"] == {"image": ["a.jpg"]}
    two = media_members(samples["two_imgs"], MODALITIES)
    assert [name for name, _ in two["image"]] == ["0.png", "1.webp"]
    assert decode_image(two["image"][1][1]).size == (30, 40)
    both = media_members(samples["both"], MODALITIES)
    assert [n for n, _ in both["image"]] == ["jpg"] and [n for n, _ in both["video"]] == ["mp4"]
    assert decode_video(both["video"][0][1], 8).shape == (8, 64, 48, 3)
    assert media_members(samples["text"], MODALITIES) == {"image": [], "video": []}
    report = json.loads((out / "report.json").read_text())
    assert report["written"] == 6 and report["skipped"] == 0
    assert report["renamed"] == [{"key": "img_1-1", "id": "img.1", "file": str(media_dir / "data.json"), "index": 5}]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["samples"] == 6 and manifest["samples_by_modality"] == {
        "image": 3, "image+video": 1, "text": 1, "video": 1
    }  # fmt: skip
    assert [(s["url"], s["samples"]) for s in manifest["shards"]] == [("shard-000000.tar", 4), ("shard-000001.tar", 2)]


def test_bad_records_are_skipped_and_reported_with_reasons(media_dir, tmp_path):
    (media_dir / "secret.jpg").write_bytes(image_bytes())
    (media_dir / "videos" / "fake.mp4").write_bytes(b"this is not a video")
    (media_dir / "images" / "broken.jpg").write_bytes(image_bytes()[:50])
    out = tmp_path / "out"
    assert _run(media_dir, _records()[:1] + _bad_records(), out) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["written"] == 1 and report["skipped"] == 8
    assert report["skipped_by_reason"] == {
        "bad_json": 2, "missing_file": 1, "path_escape": 2, "placeholder_mismatch": 1, "undecodable_media": 2
    }  # fmt: skip
    lines = [json.loads(line) for line in (out / "skipped.jsonl").read_text().splitlines()]
    reasons = {line["key"]: line["reason"] for line in lines}
    assert reasons == {
        "missing": "missing_file", "escape": "path_escape", "absolute": "path_escape",
        "mismatch": "placeholder_mismatch", "bad_video": "undecodable_media", "bad_image": "undecodable_media",
        "shape": "bad_json", "role": "bad_json",
    }  # fmt: skip
    assert all(line["detail"] and line["file"].endswith("data.json") for line in lines)
    assert list(_read(out)) == ["img_1"]


def test_frames_option_stores_decodable_jpeg_frames(media_dir, tmp_path):
    out = tmp_path / "frames"
    assert _run(media_dir, _records()[2:4], out, "--frames", "4") == 0
    samples = _read(out)
    vid = samples["vid"]
    assert sorted(k for k in vid if not k.startswith("__")) == [f"frames.{j}.jpg" for j in range(4)] + ["json"]
    members = media_members(vid, MODALITIES)
    assert [n for n, _ in members["video"]] == ["frames"]
    from_frames = decode_frames(members["video"][0][1], 4, key="vid")
    from_video = decode_video(media_dir / "videos" / "v8.mp4", 4)
    assert from_frames.shape == (4, 48, 64, 3)
    assert (from_frames.float() - from_video.float()).abs().mean() < 3.0  # JPEG quality 90


def test_reencode_option_shrinks_videos(media_dir, tmp_path):
    write_mp4(media_dir / "videos" / "big.mp4", 30, (160, 120))
    record = {"id": "big", "video": "big.mp4", "conversations": _turns("<video>\nx")}
    out = tmp_path / "re"
    assert _run(media_dir, [record], out, "--reencode", "32") == 0
    video = decode_video(media_members(_read(out)["big"], MODALITIES)["video"][0][1], 30)
    assert video.shape == (30, 32, 42, 3)
    assert not list(out.glob("*.tmp"))


def test_unusable_input_file_fails_with_its_name(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{\n  "not": "a list"\n}\n')
    with pytest.raises(UserError, match="bad.json: neither a JSON list nor JSONL of objects"):
        main([str(bad), "--out", str(tmp_path / "o")])
    assert not (tmp_path / "o").exists()


def test_shard_writer_renames_only_complete_shards(tmp_path):
    pattern = str(tmp_path / "s-%06d.tar")
    with pytest.raises(RuntimeError), ShardWriter(pattern, max_count=2) as writer:
        for i in range(3):
            writer.write({"__key__": f"k{i}", "txt": b"x"})
        raise RuntimeError("crash while the second shard is open")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s-000000.tar"]


def test_keys_are_dot_free_and_unique():
    used: set[str] = set()
    assert [sanitize_key(k, used) for k in ["a.b", "a_b", "a.b", "", "x/y z"]] == [
        "a_b",
        "a_b-1",
        "a_b-2",
        "sample",
        "x_y_z",
    ]


def test_media_members_orders_numerically_and_rejects_bad_layouts():
    sample = {"__key__": "k", "json": b"{}", "1.jpg": b"B", "0.jpg": b"A", "0.frames.10.jpg": b"f10",
              "0.frames.9.jpg": b"f9", "1.frames.0.jpg": b"g0"}  # fmt: skip
    members = media_members(sample, MODALITIES)
    assert members["image"] == [("0.jpg", b"A"), ("1.jpg", b"B")]
    assert members["video"] == [("0.frames", [b"f9", b"f10"]), ("1.frames", [b"g0"])]
    for bad, message in [({"jpg": b"", "png": b""}, "two image members"), ({"0.jpg": b"", "2.jpg": b""}, "0..1"),
                         ({"mp4": b"", "frames.0.jpg": b""}, "both"), ({"exe": b""}, "unknown member")]:  # fmt: skip
        with pytest.raises(SampleFormatError, match=message):
            media_members({"__key__": "bad_one", **bad}, MODALITIES)


def test_the_lvlm_shards_command_runs(media_dir, tmp_path):
    (media_dir / "data.json").write_text(json.dumps(_records()[:3]))
    command = [sys.executable, "-m", "lvlm", "shards", str(media_dir / "data.json"), "--image-folder",
               str(media_dir / "images"), "--video-folder", str(media_dir / "videos"), "--out", str(tmp_path / "s"),
               "--max-count", "5000", "--reencode", "32"]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["written"] == 3
    assert "3/3" in result.stderr and "rec/s" in result.stderr  # the progress bar: count and rate
    assert [p.name for p in (tmp_path / "s").glob("*.tar")] == ["shard-000000.tar"]
