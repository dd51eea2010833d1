"""Decode + transform throughput: lvlm's shard pipeline versus the original Video-LLaVA procedure.

Both read the same media (a 50/50 mix of 640x480 JPEGs and 10 s 720p H.264 clips, 8 frames per clip), in the
same run, with the same DataLoader worker count, one sample at a time:

- baseline (spec §6.2-6.3, step by step): JSON list + files; ``Image.open().convert("RGB")`` ->
  ``ToTensor`` -> ``Resize(224, bicubic)`` -> ``CenterCrop`` -> ``Normalize``; videos with
  ``decord.VideoReader(path)`` (default threads) -> ``get_batch(linspace)`` at full resolution -> ``x / 255``
  -> ``NormalizeVideo`` at full resolution -> ``ShortSideScale(224)`` -> ``CenterCropVideo`` -> random flip.
- lvlm decode+transform: WebDataset shards written by ``lvlm shards`` -> ``media_members`` -> ``decode_image`` /
  ``decode_video(short_side=224)`` -> ``ImageTransform`` / ``VideoTransform`` (uint8 resize, normalise last),
  once per video backend.
- lvlm DataModule: the same shards through ``LVLMDataModule.test_dataloader()`` (batch size 1, tokenization
  and collation included).
- With ``--reencode 224``, the lvlm rows again over shards whose videos ``lvlm shards --reencode 224``
  re-encoded (short side 224, GOP 8).

Also prints the raw decode throughput of the same media (one process, no transform) and the decode
efficiency: pipeline samples/s divided by (workers x raw decode samples/s), measured in the same run; and the
CPU efficiency: raw decode CPU time per sample divided by the pipeline's CPU time per sample (main process and
workers), which a machine shared with other jobs changes far less than the rates. ``--copies K`` repeats the
re-encoded shards' samples K times (under new keys), so that worker start-up weighs as little as in an epoch.
Prints figures (and writes them with ``--json``); asserts nothing.

    python benchmarks/data_throughput.py --clips 6 --images 6 --workers 2 --reencode 224
    python benchmarks/data_throughput.py --clips 20 --images 20 --reencode 224 --copies 5 --reencoded-only --json d.json
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import io
import itertools
import json
import math
import os
import random
import resource
import shutil
import statistics
import tarfile
import tempfile
import time
from pathlib import Path

import av
import numpy as np
import torch
import torch.nn.functional as F
import torchvision.transforms as T
import webdataset as wds
from PIL import Image

from lvlm.apps.shards import main as shards_main
from lvlm.data.decoding import available_backends, decode_image, decode_video, default_backend
from lvlm.data.sample_format import media_members
from lvlm.data.transforms import CLIP_MEAN, CLIP_STD, ImageTransform, VideoTransform
from lvlm.modalities import ImageModality, VideoModality
from lvlm.models.vision.clip_tower import LanguageBindImageTower, LanguageBindVideoTower

SIZE, NUM_FRAMES = 224, 8


# ----------------------------------------------------------------------------------------------- the media


def videollava_modalities() -> list:
    """Video-LLaVA's image and video modalities (LanguageBind ViT-L/14 shapes: 256 image tokens, 257 per frame,
    224 px); only the towers' shapes are read (built on the meta device), no weights."""
    vit_l14 = {"hidden_size": 1024, "intermediate_size": 4096, "num_hidden_layers": 24, "num_attention_heads": 16,
               "image_size": 224, "patch_size": 14}  # fmt: skip
    image_tower = functools.partial(LanguageBindImageTower, vit_l14, select_layer=-2)
    video_tower = functools.partial(LanguageBindVideoTower, vit_l14, select_layer=-2, num_frames=NUM_FRAMES)
    return [ImageModality(image_tower, image_mode="pad").bind("image"), VideoModality(video_tower).bind("video")]


MODALITIES = videollava_modalities()


def make_clip(path: Path, seed: int, seconds: int = 10, fps: int = 30, width: int = 1280, height: int = 720) -> None:
    """A 10 s 720p H.264 clip (x264 defaults: GOP 250, B-frames; about 5 MB): a scrolling gradient, noise, a box."""
    yy, xx = np.mgrid[0:height, 0:width]
    base = np.stack([xx * 255 // width, yy * 255 // height, (xx // 3 + yy // 2 + seed * 40) % 256], -1).astype(np.uint8)
    noise = np.random.default_rng(seed).integers(0, 4, (8, height, width, 3), dtype=np.uint8)
    with av.open(str(path), "w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.codec_context.options = {"preset": "superfast", "crf": "23"}
        for i in range(seconds * fps):
            image = np.roll(base, i * 4, axis=1) + noise[i % 8]
            x = (i * 9 + seed * 100) % (width - 128)
            image[200:328, x : x + 128] = 255
            container.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
        container.mux(stream.encode(None))


def make_image(path: Path, seed: int) -> None:
    """A 640x480 JPEG (quality 90) with gradients, noise and rectangles, about photo-sized."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:480, 0:640]
    image = np.stack([xx * 255 // 640, yy * 255 // 480, (xx + yy + seed * 30) % 256], -1).astype(np.int16)
    image += rng.integers(-20, 21, image.shape, dtype=np.int16)
    for _ in range(6):
        x, y = rng.integers(0, 560), rng.integers(0, 400)
        image[y : y + 80, x : x + 80] = rng.integers(0, 256, 3)
    Image.fromarray(np.clip(image, 0, 255).astype(np.uint8)).save(path, format="JPEG", quality=90)


def make_dataset(root: Path, clips: int, images: int, distinct: int, workers: int) -> list[list[dict]]:
    """Write the media; return one record list per DataLoader worker, each an alternating clip/image mix.

    Clips beyond ``distinct`` are copies (decoding cost does not depend on the bytes being new).
    """
    (root / "videos").mkdir(parents=True)
    (root / "images").mkdir()
    for i in range(clips):
        if i < distinct:
            make_clip(root / "videos" / f"clip_{i:04d}.mp4", seed=i)
        else:
            shutil.copy(root / "videos" / f"clip_{i % distinct:04d}.mp4", root / "videos" / f"clip_{i:04d}.mp4")
    for i in range(images):
        make_image(root / "images" / f"img_{i:04d}.jpg", seed=i)
    human = "{}\nDescribe it."
    per_worker: list[list[dict]] = [[] for _ in range(workers)]
    for i in range(max(clips, images)):
        if i < clips:
            conv = [{"from": "human", "value": human.format("<video>")}, {"from": "gpt", "value": "Something."}]
            per_worker[i % workers].append({"id": f"v{i}", "video": f"clip_{i:04d}.mp4", "conversations": conv})
        if i < images:
            conv = [{"from": "human", "value": human.format("<image>")}, {"from": "gpt", "value": "Something."}]
            per_worker[i % workers].append({"id": f"i{i}", "image": f"img_{i:04d}.jpg", "conversations": conv})
    return per_worker


# ------------------------------------------------------------------------------------ the original procedure
class OriginalDataset(torch.utils.data.Dataset):
    """Video-LLaVA's per-sample loading and preprocessing, step by step (spec §6.2-6.3)."""

    def __init__(self, root: Path, records: list[dict]) -> None:
        self.root, self.records = root, records
        # torchvision < 0.17 (the original's) did not antialias tensor resizes
        self.image_transform = T.Compose(
            [T.ToTensor(), T.Resize(SIZE, T.InterpolationMode.BICUBIC, antialias=False), T.CenterCrop(SIZE),
             T.Normalize(CLIP_MEAN, CLIP_STD)]
        )  # fmt: skip
        self.mean = torch.tensor(CLIP_MEAN)[:, None, None, None]
        self.std = torch.tensor(CLIP_STD)[:, None, None, None]

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> torch.Tensor:
        record = self.records[index]
        if "image" in record:
            return self.image_transform(Image.open(self.root / "images" / record["image"]).convert("RGB"))
        import decord

        reader = decord.VideoReader(str(self.root / "videos" / record["video"]), ctx=decord.cpu(0))
        indices = np.linspace(0, len(reader) - 1, NUM_FRAMES, dtype=int)
        video = torch.from_numpy(reader.get_batch(indices).asnumpy()).permute(3, 0, 1, 2)  # c t h w
        video = video / 255.0
        video = (video - self.mean) / self.std  # NormalizeVideo, at full resolution
        c, t, h, w = video.shape  # ShortSideScale(224): bilinear, no antialias
        new_h, new_w = (int(math.floor(h / w * SIZE)), SIZE) if w < h else (SIZE, int(math.floor(w / h * SIZE)))
        video = F.interpolate(video, size=(new_h, new_w), mode="bilinear", align_corners=False)
        top, left = int(round((new_h - SIZE) / 2.0)), int(round((new_w - SIZE) / 2.0))
        video = video[..., top : top + SIZE, left : left + SIZE]  # CenterCropVideo
        return video.flip(-1) if random.random() < 0.5 else video  # RandomHorizontalFlipVideo (also at test)


# --------------------------------------------------------------------------------------------------- lvlm
class LvlmProcess:
    """lvlm's per-sample decode + transform of one raw shard sample."""

    def __init__(self, backend: str | None = None) -> None:
        self.backend = backend
        self.image = ImageTransform(SIZE, CLIP_MEAN, CLIP_STD)
        self.video = VideoTransform(SIZE, CLIP_MEAN, CLIP_STD)

    def __call__(self, sample: dict) -> torch.Tensor:
        members = media_members(sample, MODALITIES)
        if members["image"]:
            return self.image(decode_image(members["image"][0][1], key=sample["__key__"]))
        frames = decode_video(
            members["video"][0][1], NUM_FRAMES, key=sample["__key__"], short_side=SIZE, backend=self.backend
        )
        return self.video(frames)


def lvlm_dataset(shard_dir: Path, backend: str | None = None) -> wds.WebDataset:
    urls = sorted(str(p) for p in shard_dir.glob("*.tar"))
    dataset = wds.WebDataset(urls, shardshuffle=False, nodesplitter=wds.split_by_node, empty_check=False)
    return dataset.map(LvlmProcess(backend))


def cpu_seconds() -> float:
    """CPU time of this process and of its finished (joined) children, such as DataLoader workers."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def timed(iterable, count_of) -> tuple[float, float]:
    """Iterate to the end: (samples/s, CPU seconds per sample, workers included); start-up included."""
    start, cpu, count = time.perf_counter(), cpu_seconds(), 0
    for item in iterable:
        count += count_of(item)
    return count / (time.perf_counter() - start), (cpu_seconds() - cpu) / max(count, 1)


def datamodule_throughput(shard_dir: Path, workers: int, run_dir: Path) -> tuple[float, float]:
    """Samples per second through ``LVLMDataModule.test_dataloader()`` (tokenization and collation included),
    and CPU seconds per sample."""
    from lvlm.data.datamodule import LVLMDataModule
    from lvlm.data.settings import DataSources, LoaderSettings, MediaSettings
    from lvlm.data.tokenizer_training import train_tokenizer

    tokenizer = train_tokenizer(["Describe it. Something."] * 20, vocab_size=300)
    dm = LVLMDataModule(
        sources=DataSources(test=[{"pattern": str(shard_dir / "*.tar")}]),
        media=MediaSettings(num_frames=NUM_FRAMES),
        loader=LoaderSettings(batch_size=1, num_workers=workers),
        tokenizer=tokenizer,
        modalities=MODALITIES,
        max_length=4096,
        run_dir=str(run_dir),
    )
    return timed(dm.test_dataloader(), lambda batch: len(batch["keys"]))


def throughput(dataset: torch.utils.data.Dataset, workers: int) -> tuple[float, float]:
    """Samples per second through a DataLoader (worker start-up included, as in training); CPU s per sample."""
    return timed(torch.utils.data.DataLoader(dataset, batch_size=None, num_workers=workers), lambda _: 1)


def raw_decode(shard_dir: Path, backend: str) -> tuple[float, float, float]:
    """Decoding alone, one process, of the media in ``shard_dir``: (samples/s on the mix, clips/s, CPU seconds
    per sample on the mix).

    Images decode to RGB, clips to 8 frames at their stored size; no transform, no DataLoader.
    """
    seconds = {"image": 0.0, "video": 0.0}
    counts = {"image": 0, "video": 0}
    cpu = 0.0
    for sample in wds.WebDataset(sorted(str(p) for p in shard_dir.glob("*.tar")), shardshuffle=False):
        members = media_members(sample, MODALITIES)
        kind = "image" if members["image"] else "video"
        start, start_cpu = time.perf_counter(), time.process_time()
        if kind == "image":
            decode_image(members["image"][0][1])
        else:
            decode_video(members["video"][0][1], NUM_FRAMES, backend=backend)
        seconds[kind] += time.perf_counter() - start
        cpu += time.process_time() - start_cpu
        counts[kind] += 1
    total = sum(counts.values())
    return total / sum(seconds.values()), counts["video"] / max(seconds["video"], 1e-9), cpu / total


def replicate(shard_dir: Path, copies: int) -> None:
    """Add ``copies - 1`` copies of every shard in ``shard_dir``, each member's key prefixed ``c<k>-``."""
    for path in sorted(shard_dir.glob("*.tar")):
        with tarfile.open(path) as source:
            members = [(m, source.extractfile(m).read()) for m in source.getmembers() if m.isfile()]
        for k in range(1, copies):
            with tarfile.open(shard_dir / f"c{k}-{path.name}", "w") as out:
                for member, data in members:
                    info = tarfile.TarInfo(f"c{k}-{member.name}")
                    info.size, info.mtime = len(data), member.mtime
                    out.addfile(info, io.BytesIO(data))


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clips", type=int, default=6, help="10 s 720p clips (default 6)")
    parser.add_argument("--images", type=int, default=6, help="640x480 JPEGs (default 6)")
    parser.add_argument("--distinct", type=int, default=2, help="distinct clips to encode; the rest are copies")
    parser.add_argument("--workers", type=int, default=2, help="DataLoader workers for every pipeline")
    parser.add_argument("--repeats", type=int, default=1, help="alternating runs of each pipeline (median shown)")
    parser.add_argument("--reencode", type=int, default=None, help="also measure shards re-encoded to this short side")
    parser.add_argument("--copies", type=int, default=1, help="repeat the re-encoded shards' samples this many times")
    parser.add_argument(
        "--reencoded-only", action="store_true", help="only the re-encoded shards' rows (no baseline, no raw clips)"
    )
    parser.add_argument("--json", help="write the figures here")
    args = parser.parse_args()
    if args.reencoded_only and not args.reencode:
        parser.error("--reencoded-only needs --reencode")
    return args


def prepare(root: Path, args: argparse.Namespace) -> list[dict]:
    """Media, the original-format JSON, and shards (raw, and re-encoded if asked). Returns the baseline's records."""
    workers = max(1, args.workers)
    per_worker = make_dataset(root, args.clips, args.images, min(args.distinct, args.clips) or 1, workers)
    # Interleaved, so that every pipeline's worker split (the baseline's per-worker lists, WebDataset's
    # shard-per-worker split, the DataModule's batch i -> worker i % workers) gives each worker the same
    # mix of clips and images; worker-by-worker blocks would hand one worker every clip.
    interleaved = [r for group in itertools.zip_longest(*per_worker) for r in group if r is not None]
    (root / "data.json").write_text(json.dumps(interleaved))
    folders = ["--image-folder", str(root / "images"), "--video-folder", str(root / "videos")]
    # one shard per worker (WebDataset hands shard w to worker w), the same split the baseline gets
    shard_args = [str(root / "data.json"), *folders, "--max-count", str(max(map(len, per_worker)))]
    with open(os.devnull, "w") as quiet, contextlib.redirect_stdout(quiet):
        shards_main([*shard_args, "--out", str(root / "shards")])
        if args.reencode:
            shards_main([*shard_args, "--out", str(root / "shards_re"), "--reencode", str(args.reencode)])
            replicate(root / "shards_re", args.copies)
    # the baseline's DataLoader hands index j to worker j % workers
    return [r for group in itertools.zip_longest(*per_worker) for r in group if r is not None]


def main() -> None:
    args = parse_args()
    backends = available_backends()
    print(f"cpus={os.cpu_count()} torch={torch.__version__} default backend={default_backend()} workers={args.workers}")
    print(f"load average at the start: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    for modality in MODALITIES:  # the towers' facts come with the model in training: not part of loading
        modality.tower_facts  # noqa: B018
    with tempfile.TemporaryDirectory(prefix="lvlm-bench-") as tmp:
        root = Path(tmp)
        start = time.perf_counter()
        records = prepare(root, args)
        clip_mb = sum(p.stat().st_size for p in (root / "videos").iterdir()) / 1e6 / max(1, args.clips)
        elapsed = time.perf_counter() - start
        print(f"media: {args.clips} clips ({clip_mb:.1f} MB each) + {args.images} images, ready in {elapsed:.0f} s")
        reencoded = f"--reencode {args.reencode}"
        stores = ({} if args.reencoded_only else {"raw": root / "shards"}) | (
            {reencoded: root / "shards_re"} if args.reencode else {}
        )
        raw = {(store, b): raw_decode(path, b) for store, path in stores.items() for b in backends}
        # name -> (run, raw-decode reference for the efficiency)
        runs = {}
        if not args.reencoded_only:
            runs["baseline (original procedure)"] = (
                lambda: throughput(OriginalDataset(root, records), args.workers),
                ("raw", "decord" if "decord" in backends else backends[0]),  # the original's decoder
            )
        for store, path in stores.items():
            for backend in backends:
                run = functools.partial(lambda p, b: throughput(lvlm_dataset(p, b), args.workers), path, backend)
                runs[f"lvlm decode+transform, {store}, {backend}"] = (run, (store, backend))
            run = functools.partial(datamodule_throughput, path, args.workers, root)
            runs[f"lvlm DataModule, {store}, {default_backend()}"] = (run, (store, default_backend()))
        # (samples/s, CPU s per sample, the raw-decode reference) per run. The re-encoded media decode in seconds,
        # so their reference is measured again right before each run: the ratio then compares like with like on
        # a machine whose load drifts. The raw clips' reference (minutes) is the one measured above.
        rows: dict[str, list[tuple[float, float, tuple[float, float, float]]]] = {name: [] for name in runs}
        for _ in range(args.repeats):  # alternate, so that load changes hit every row alike
            for name, (run, (store, backend)) in runs.items():
                try:
                    reference = raw_decode(stores[store], backend) if store == reencoded else raw[(store, backend)]
                    rows[name].append((*run(), reference))
                except Exception as err:  # noqa: BLE001 - a row that cannot run is reported, not fatal
                    print(f"{name}: could not run ({type(err).__name__}: {err})")
    result: dict = {"settings": vars(args), "load_average_end": os.getloadavg(), "raw_decode": {}, "rows": {}}
    for (store, backend), (mix, clips, cpu) in raw.items():
        print(
            f"raw decode, {store} media, {backend:>6}, 1 process: {mix:6.2f} samples/s on the mix, {clips:6.2f} "
            f"clips/s, {1000 * cpu:6.2f} ms CPU per sample"
        )
        result["raw_decode"][f"{store}, {backend}"] = {"samples_per_s": mix, "clips_per_s": clips, "cpu_s": cpu}
    print("decode efficiency = samples/s / (workers x raw decode samples/s of the same media and backend)")
    print("CPU efficiency = raw decode CPU time per sample / the pipeline's CPU time per sample (workers included)")
    print(f"({reencoded if args.reencode else 'none'}: raw decode measured again before each run; medians of the runs)")
    baseline = rows.get("baseline (original procedure)")
    base = statistics.median(r[0] for r in baseline) if baseline else None
    for name, values in rows.items():
        if values:
            value, cpu = statistics.median(r[0] for r in values), statistics.median(r[1] for r in values)
            efficiency = statistics.median(r[0] / (args.workers * r[2][0]) for r in values)
            cpu_efficiency = statistics.median(r[2][2] / r[1] for r in values)
            versus = f"x{value / base:5.2f}" if base else "   - "
            print(
                f"{name:<44} {value:6.2f} samples/s  {versus} vs baseline  decode efficiency {100 * efficiency:5.1f} %"
                f"  CPU efficiency {100 * cpu_efficiency:5.1f} %  runs={[round(r[0], 2) for r in values]}"
            )
            result["rows"][name] = {
                "samples_per_s": value,
                "cpu_s_per_sample": cpu,
                "vs_baseline": value / base if base else None,
                "decode_efficiency": efficiency,
                "cpu_efficiency": cpu_efficiency,
                "runs": [{"samples_per_s": r[0], "cpu_s_per_sample": r[1], "raw_decode": list(r[2])} for r in values],
            }
    if args.json:
        with open(args.json, "w") as out:
            json.dump(result, out, indent=2)


if __name__ == "__main__":
    main()
