"""`lvlm shards` as a batch job: bad records never stop it, outputs never mix, --workers and --resume are exact.

Real files everywhere: JPEG/PNG and H.264 mp4 written with PIL/PyAV, symlink loops, FIFOs, a real subprocess
killed with SIGKILL.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import webdataset as wds

from lvlm.apps.shards import main
from lvlm.core.errors import UserError
from lvlm.data.conversion_log import work_folder
from lvlm.data.decoding import decode_video
from lvlm.modalities.catalog import installed_modality_names
from tests.data.media_fixtures import image_bytes, make_media_dir
from tests.processes import alive, children, kill_alive
from tests.waiting import wait_until


def turns(human: str, answer: str = "ok") -> list[dict[str, str]]:
    return [{"from": "human", "value": human}, {"from": "gpt", "value": answer}]


@pytest.fixture
def media(tmp_path: Path) -> Path:
    return make_media_dir(tmp_path / "media")


def write_json(media: Path, records: list, name: str = "data.json") -> Path:
    path = media / name
    path.write_text(json.dumps(records))
    return path


def run(media: Path, data: Path, out: Path, *extra: str) -> dict:
    folders = ["--image-folder", str(media / "images"), "--video-folder", str(media / "videos")]
    assert main([str(data), *folders, "--out", str(out), "--no-progress", *extra]) == 0
    return json.loads((out / "report.json").read_text())


def output_files(out: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(out.iterdir())}


def mixed_records(count: int) -> list:
    """Images, videos, text, a repeated id and a few bad records, cycling."""
    kinds = [
        {"image": "a.jpg", "conversations": turns("<image>\nWhat?")},
        {"video": "v8.mp4", "conversations": turns("<video>\nMoving?")},
        {"conversations": turns("Hello?", "Hi.")},
        {"image": "missing.jpg", "conversations": turns("<image>\nx")},
        {"video": "v3.mp4", "image": "b.png", "conversations": turns("<video>\n<image>\nSame?")},
        "not an object",
    ]
    records = []
    for i in range(count):
        record = kinds[i % len(kinds)]
        records.append({"id": f"r{i % 9}", **record} if isinstance(record, dict) else record)
    return records


def test_every_kind_of_bad_record_is_skipped_counted_and_listed(media, tmp_path):
    images = media / "images"
    os.symlink("loop_b.jpg", images / "loop_a.jpg")
    os.symlink("loop_a.jpg", images / "loop_b.jpg")
    os.mkfifo(images / "fifo.jpg")  # reading it would block forever
    (images / "folder.jpg").mkdir()
    (images / "truncated.jpg").write_bytes(image_bytes()[:60])
    bad = {
        "loop": {"image": "loop_a.jpg", "conversations": turns("<image>\nx")},
        "nul": {"image": "a\x00.jpg", "conversations": turns("<image>\nx")},
        "long_name": {"image": "x" * 300 + ".jpg", "conversations": turns("<image>\nx")},
        "long_path": {"image": "/".join(["d" * 200] * 30) + ".jpg", "conversations": turns("<image>\nx")},
        "fifo": {"image": "fifo.jpg", "conversations": turns("<image>\nx")},
        "folder": {"image": "folder.jpg", "conversations": turns("<image>\nx")},
        "truncated": {"image": "truncated.jpg", "conversations": turns("<image>\nx")},
        "no_turns": {"image": "a.jpg"},
        "image_type": {"image": 5, "conversations": turns("<image>\nx")},
        "image_list_type": {"image": ["a.jpg", None], "conversations": turns("<image><image>\nx")},
        "turn_type": {"conversations": [{"from": "human", "value": 3}]},
        "empty_path": {"image": " ", "conversations": turns("<image>\nx")},
    }
    records = [{"id": key, **value} for key, value in bad.items()]
    records += [{"id": {"nested": 1}, "conversations": turns("hi")}, 42, None, ["a list"]]
    records.append({"id": "lone\ud800", "conversations": turns("half a pair: \udc80")})  # not valid Unicode
    records.append({"id": "good", "image": "a.jpg", "conversations": turns("<image>\nWhat?")})
    data = write_json(media, records)
    report = run(media, data, tmp_path / "out")
    assert (report["records"], report["written"], report["skipped"]) == (len(records), 1, len(records) - 1)
    lines = [json.loads(line) for line in (tmp_path / "out" / "skipped.jsonl").read_text().splitlines()]
    reasons = {line["key"]: line["reason"] for line in lines}
    assert reasons == {
        "loop": "bad_path", "nul": "bad_path", "long_name": "bad_path", "long_path": "bad_path",
        "fifo": "missing_file", "folder": "missing_file", "truncated": "undecodable_media",
        "no_turns": "bad_json", "image_type": "bad_json", "image_list_type": "bad_json", "turn_type": "bad_json",
        "empty_path": "bad_path", "data_12": "bad_json", "data_13": "bad_json", "data_14": "bad_json",
        "data_15": "bad_json", "lone": "bad_json",
    }  # fmt: skip
    assert [line["index"] for line in lines] == list(range(len(records) - 1))
    assert all(line["file"] == str(data) and line["detail"] for line in lines)
    assert report["skipped_by_reason"] == {"bad_json": 9, "bad_path": 5, "missing_file": 2, "undecodable_media": 1}
    assert lines[-1]["id"] == "lone\ud800" and "not valid Unicode" in lines[-1]["detail"]
    assert report["shards"] == ["shard-000000.tar"]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b'{\n"id": 1}', "neither a JSON list nor JSONL of objects"),
        (b"[{]", r"not valid JSON \(line 1, column 3: Expecting property name"),
        (b'["\xff"]', "not valid utf-8 at byte 2"),
    ],
)
def test_an_unusable_input_file_is_named_before_any_work(media, tmp_path, content, message):
    (media / "bad.json").write_bytes(content)
    good = write_json(media, mixed_records(3))
    with pytest.raises(UserError, match=f"bad.json: {message}"):
        main([str(good), str(media / "bad.json"), "--image-folder", str(media / "images"), "--out", f"{tmp_path}/o"])
    assert not (tmp_path / "o").exists() and not work_folder(tmp_path / "o").exists()


def test_the_command_prints_input_errors_without_a_traceback(media, tmp_path):
    data = write_json(media, [{"id": "a", "image": "a.jpg", "conversations": turns("<image>\nx")}])
    command = [sys.executable, "-m", "lvlm", "shards", str(data), "--out", str(tmp_path / "o")]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert result.stderr.startswith(f"lvlm shards: {data}: 1 record(s) name a 'image' (the first: index 0)")
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(("name", "code"), [("audio", 2), ("video", 0), ("image", 0)])
def test_a_folder_of_a_modality_not_installed_is_refused_naming_the_installed_ones(media, tmp_path, name, code):
    """``--folder audio=DIR`` without an audio plugin once wrote text-only samples and exited 0."""
    data = write_json(media, [{"id": "a", "image": "a.jpg", "conversations": turns("<image>\nx")}])
    folder = f"{name}={media / 'images'}"
    command = [sys.executable, "-m", "lvlm", "shards", str(data), "--image-folder", str(media / "images")]
    command += ["--folder", folder, "--out", str(tmp_path / "o"), "--no-progress"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert result.returncode == code, result.stderr
    if code:
        assert result.stderr.splitlines() == [
            f"lvlm shards: --folder '{folder}': no modality 'audio' is installed; the installed ones: "
            f"{', '.join(installed_modality_names())} (a plugin's modality is installed with its package, see "
            "docs/extending.md)"
        ]
        assert not (tmp_path / "o").exists() and not work_folder(tmp_path / "o").exists()
    else:
        assert json.loads((tmp_path / "o" / "report.json").read_text())["written"] == 1


@pytest.mark.parametrize("where", ["media", "images", "inside_images", "json_file"])
def test_an_output_that_is_contains_or_lies_inside_an_input_is_refused(media, tmp_path, where):
    data = write_json(media, mixed_records(3))
    out = {"media": media, "images": media / "images", "inside_images": media / "images" / "out", "json_file": data}
    before = {p: p.stat().st_mtime_ns for p in media.rglob("*")}
    with pytest.raises(UserError, match="input"):
        run(media, data, out[where])
    assert {p: p.stat().st_mtime_ns for p in media.rglob("*")} == before


def test_overwrite_replaces_the_output_whole(media, tmp_path):
    data = write_json(media, mixed_records(12))
    out = tmp_path / "out"
    run(media, data, out, "--max-count", "2")
    assert len(list(out.glob("*.tar"))) == 4
    (out / "notes.txt").write_text("mine")
    with pytest.raises(UserError, match="exists and is not empty: choose a new path or pass --overwrite"):
        run(media, data, out, "--max-count", "10")
    assert (out / "notes.txt").exists() and len(list(out.glob("*.tar"))) == 4
    report = run(media, data, out, "--max-count", "10", "--overwrite")
    assert report["shards"] == ["shard-000000.tar"] == [p.name for p in out.glob("*.tar")]
    expected = ["manifest.json", "report.json", "shard-000000.tar", "skipped.jsonl"]
    assert sorted(p.name for p in out.iterdir()) == expected
    assert not list(tmp_path.glob(".out.*"))  # neither the work folder nor a staged copy is left behind


def test_workers_give_the_same_shards_as_one_process(media, tmp_path):
    data = write_json(media, mixed_records(30))
    one = tmp_path / "one"
    run(media, data, one, "--max-count", "4", "--frames", "4")
    run(media, data, tmp_path / "two", "--max-count", "4", "--frames", "4", "--workers", "2")
    assert output_files(one) == output_files(tmp_path / "two")
    manifest = json.loads((one / "manifest.json").read_text())
    assert manifest["samples"] == 20 and manifest["skipped_by_reason"] == {"bad_json": 5, "missing_file": 5}
    assert manifest["samples_by_modality"] == {"image": 5, "image+video": 5, "text": 5, "video": 5}
    renamed = json.loads((one / "report.json").read_text())["renamed"]
    # ids r0..r8 repeat from record 9 on (records 5, 11, ... are not objects and have no id); record 9 (r0-1) is
    # a missing image, so the first renamed sample is r1-1; 12 of the 20 samples written were renamed
    assert [entry["key"] for entry in renamed[:3]] == ["r1-1", "r3-1", "r4-1"] and len(renamed) == 12


def test_reencoded_shards_are_the_same_files_whatever_the_workers(media, tmp_path):
    data = write_json(media, mixed_records(18))
    for name, workers in [("one", "1"), ("two", "2")]:
        run(media, data, tmp_path / name, "--max-count", "4", "--reencode", "32", "--workers", workers)
    assert output_files(tmp_path / "one") == output_files(tmp_path / "two")  # re-encoded videos too, byte for byte
    videos = [s["mp4"] for _, s in read_samples(tmp_path / "one") if "mp4" in s]
    assert videos and all(min(decode_video(v, 8).shape[1:3]) == 32 for v in videos)  # (8, 32, 42, 3) for v8.mp4


def read_samples(out: Path) -> list[tuple[str, dict]]:
    samples = []
    for shard in sorted(out.glob("*.tar")):
        for sample in wds.WebDataset(str(shard), shardshuffle=False, empty_check=False):
            samples.append((shard.name, {k: v for k, v in sample.items() if k not in ("__url__", "__local_path__")}))
    return samples


def test_kill_9_then_resume_equals_an_uninterrupted_run(media, tmp_path):
    data = write_json(media, mixed_records(60))
    reference = tmp_path / "reference"
    run(media, data, reference, "--max-count", "3", "--frames", "8")
    out = tmp_path / "out"
    folders = ["--image-folder", str(media / "images"), "--video-folder", str(media / "videos")]
    args = [str(data), *folders, "--out", str(out), "--max-count", "3", "--frames", "8"]
    marker = tmp_path / "blocked"  # the command stops once 2 shards are logged (tests/apps/shards_blocker.py)
    blocker = [sys.executable, str(Path(__file__).with_name("shards_blocker.py")), "2", str(marker)]
    command = [*blocker, *args, "--workers", "2", "--no-progress"]
    process = subprocess.Popen(command, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    wait_until(lambda: marker.exists() or process.poll() is not None, "two shards logged", timeout=120, poll_s=0.1)
    assert process.poll() is None, "the conversion ended before it could be killed"
    assert len((work_folder(out) / "progress.jsonl").read_text().splitlines()) == 2
    workers = children(process.pid)
    assert len(workers) == 2
    os.kill(process.pid, signal.SIGKILL)  # the command only: its workers must not outlive it
    process.wait()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(alive(pid) for pid in workers):
        time.sleep(0.01)
    orphans = [pid for pid in workers if alive(pid)]
    kill_alive(orphans)  # never leave them behind, even when the check below fails
    assert not orphans
    assert not out.exists() and len(list(work_folder(out).glob("*.tar"))) >= 2
    with pytest.raises(UserError, match="pass --resume to continue it"):
        main([*args, "--no-progress"])
    with pytest.raises(UserError, match="other max_count"):
        main([*args[:-4], "--max-count", "4", "--frames", "8", "--resume", "--no-progress"])
    assert main([*args, "--resume", "--no-progress"]) == 0
    assert output_files(out) == output_files(reference)
    assert not work_folder(out).exists()


def test_resume_without_an_interrupted_run_is_refused(media, tmp_path):
    data = write_json(media, mixed_records(3))
    with pytest.raises(UserError, match="no interrupted conversion to resume"):
        run(media, data, tmp_path / "out", "--resume")
