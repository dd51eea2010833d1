"""How `lvlm shards` scales with `--workers`: records per second with 1 worker and with N (the machine's cores).

Writes a JSON list of records (half images, half videos) over generated media, converts it with `--workers 1`
and `--workers N`, with re-encoding off (media copied after a decode check) and on (`--reencode SHORT_SIDE`),
and checks that both runs wrote the same samples (keys, order, shard boundaries, json members); it also says
whether the shard files are byte-identical (always with re-encoding off; with it on, x264 does not give
bit-identical files run to run). Prints and writes (`--json PATH`)::

    {"records_per_s": {"1": x, "N": y}, "speedup": y / x,          # re-encoding on (the expensive case), if run
     "modes": {"reencode": {...the same...}, "copy": {"records_per_s": {...}, "speedup": ...}},
     "cores": N, "records": {"copy": R1, "reencode": R2}, "loadavg_before": [...], "loadavg_after": [...]}

The target is speedup >= 0.8 x N. The load averages say how busy the machine was (other jobs share the cores).

    python benchmarks/shards_scaling.py --json shards_scaling.json
    python benchmarks/shards_scaling.py --records 8 --copy-records 8 --size 64 --json /tmp/s.json   # tiny
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import tarfile
import tempfile
import time
from pathlib import Path

import av
import numpy as np
from PIL import Image

from lvlm.apps.shards import main as shards_main


def make_video(path: Path, seconds: float, size: int, seed: int) -> None:
    """An H.264 clip, ``size`` x ``size * 3 / 4`` at 25 fps: a moving gradient with noise."""
    width, height = size // 2 * 2, size * 3 // 8 * 2
    rng = np.random.default_rng(seed)
    base = np.stack(np.meshgrid(np.linspace(0, 255, width), np.linspace(0, 255, height)) * 2, -1)[..., :3]
    with av.open(str(path), "w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for i in range(max(1, int(seconds * 25))):
            frame = (np.roll(base, i * 3, axis=1) + rng.integers(0, 8, base.shape)).clip(0, 255).astype(np.uint8)
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode(None))


def make_image(path: Path, size: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 255, (size * 3 // 4, size, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path, quality=90)


def write_inputs(root: Path, records: int, video_seconds: float, size: int, distinct: int) -> list[str]:
    """Media folders and a JSON list; returns the `lvlm shards` arguments naming them."""
    (root / "images").mkdir(parents=True)
    (root / "videos").mkdir()
    for i in range(distinct):
        make_image(root / "images" / f"{i}.jpg", size, i)
        make_video(root / "videos" / f"{i}.mp4", video_seconds, size, i)
    items = []
    for i in range(records):
        turns = [{"from": "gpt", "value": f"answer {i}"}]
        if i % 2:
            items.append({"id": f"v{i}", "video": f"{i % distinct}.mp4", "conversations": [_ask("<video>")] + turns})
        else:
            items.append({"id": f"i{i}", "image": f"{i % distinct}.jpg", "conversations": [_ask("<image>")] + turns})
    (root / "data.json").write_text(json.dumps(items))
    return [str(root / "data.json"), "--image-folder", str(root / "images"), "--video-folder", str(root / "videos")]


def _ask(placeholder: str) -> dict[str, str]:
    return {"from": "human", "value": f"{placeholder}\nDescribe it."}


def convert(args: list[str], out: Path, workers: int, extra: list[str]) -> float:
    """Seconds one conversion takes."""
    start = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):  # the command's own report
        shards_main([*args, "--out", str(out), "--workers", str(workers), "--max-count", "16", "--no-progress", *extra])
    return time.perf_counter() - start


def measure(args: list[str], root: Path, records: int, cores: int, extra: list[str], name: str) -> dict:
    seconds = {}
    for workers in (1, cores):
        seconds[workers] = convert(args, root / f"{name}-{workers}", workers, extra)
    one, many = root / f"{name}-1", root / f"{name}-{cores}"
    same_samples = describe(one) == describe(many)
    if not same_samples:
        raise SystemExit(f"{name}: --workers {cores} wrote other samples than --workers 1")
    same_bytes = all((one / p.name).read_bytes() == p.read_bytes() for p in many.iterdir())
    rates = {str(w): records / s for w, s in seconds.items()}
    return {
        "records_per_s": rates,
        "speedup": rates[str(cores)] / rates["1"],
        "identical_samples": same_samples,
        "identical_bytes": same_bytes,
    }


def describe(out: Path) -> list[tuple[str, str, list[str], bytes]]:
    """(shard, key, member names, json) of every sample, in order."""
    found = []
    for shard in sorted(out.glob("*.tar")):
        with tarfile.open(shard) as tar:
            groups: dict[str, dict[str, bytes]] = {}
            for member in tar.getmembers():
                key, _, suffix = member.name.partition(".")
                groups.setdefault(key, {})[suffix] = tar.extractfile(member).read()
        found += [(shard.name, key, sorted(members), members["json"]) for key, members in groups.items()]
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=64, help="records (half images, half videos) re-encoded")
    parser.add_argument("--copy-records", type=int, default=1024, help="records in the run without re-encoding")
    parser.add_argument("--video-seconds", type=float, default=4.0, help="length of each video")
    parser.add_argument("--size", type=int, default=480, help="media width in pixels (height: 3/4 of it)")
    parser.add_argument("--distinct", type=int, default=8, help="distinct media files the records cycle through")
    parser.add_argument("--reencode", type=int, default=224, help="short side for the re-encoding run")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="N (default: the machine's cores)")
    parser.add_argument("--modes", default="copy,reencode", help="which runs: copy, reencode or both (default)")
    parser.add_argument("--json", type=Path, help="also write the result here")
    options = parser.parse_args()
    cores = options.workers
    load_before = list(os.getloadavg())
    with tempfile.TemporaryDirectory(prefix="lvlm-shards-bench-") as tmp:
        root = Path(tmp)
        modes = {}
        for mode in options.modes.split(","):
            count = options.copy_records if mode == "copy" else options.records
            args = write_inputs(root / mode, count, options.video_seconds, options.size, options.distinct)
            extra = [] if mode == "copy" else ["--reencode", str(options.reencode)]
            modes[mode] = measure(args, root / mode, count, cores, extra, mode)
    main_mode = "reencode" if "reencode" in modes else next(iter(modes))
    result = {
        "records_per_s": modes[main_mode]["records_per_s"],
        "speedup": modes[main_mode]["speedup"],
        "modes": modes,
        "cores": cores,
        "records": {mode: options.copy_records if mode == "copy" else options.records for mode in modes},
        "target_speedup": 0.8 * cores,
        "loadavg_before": load_before,
        "loadavg_after": list(os.getloadavg()),
    }
    for name, mode in modes.items():
        rates = mode["records_per_s"]
        print(f"{name:>9}: 1 worker {rates['1']:.2f} rec/s, {cores} workers {rates[str(cores)]:.2f} rec/s, "
              f"speedup x{mode['speedup']:.2f} (target x{0.8 * cores:.1f}), same samples: yes, "
              f"same bytes: {'yes' if mode['identical_bytes'] else 'no'}")  # fmt: skip
    print(json.dumps(result))
    if options.json:
        options.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
