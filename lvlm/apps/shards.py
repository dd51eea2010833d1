"""``lvlm shards``: Video-LLaVA/LLaVA JSON lists + media folders -> WebDataset shards, with a skip report.

Example::

    lvlm shards llava_image_tune_.json videochatgpt_tune_.json --image-folder data/llava_image_tune \\
        --video-folder data/videochatgpt_tune --out shards/stage2 --reencode 336 --max-count 5000
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path
from typing import Any

from lvlm.data.shards import ShardWriter, SkippedSample, convert_record, sanitize_key
from lvlm.modalities.catalog import installed_modalities


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``lvlm shards``."""
    parser = argparse.ArgumentParser(
        prog="lvlm shards",
        description="Convert Video-LLaVA/LLaVA JSON lists (id, image, video, conversations) and their media "
        "folders into WebDataset shards (docs/data-format.md). Bad records are skipped and listed in "
        "OUT/skipped.jsonl; counts go to OUT/report.json.",
    )
    parser.add_argument("json_files", nargs="+", type=Path, help="JSON files, each a list of records")
    parser.add_argument("--image-folder", type=Path, help="folder that 'image' paths are relative to")
    parser.add_argument("--video-folder", type=Path, help="folder that 'video' paths are relative to")
    parser.add_argument(
        "--folder",
        action="append",
        default=[],
        metavar="NAME=DIR",
        help="folder that the paths of modality NAME are relative to (a plugin's: --folder depth=depths/)",
    )
    parser.add_argument("--out", type=Path, required=True, help="output folder for shards and the report")
    parser.add_argument("--prefix", default="shard", help="shard name prefix: PREFIX-000000.tar (default: shard)")
    parser.add_argument("--max-count", type=int, default=10_000, help="samples per shard (default: 10000)")
    parser.add_argument("--max-size", type=float, default=1e9, help="bytes per shard (default: 1e9)")
    store = parser.add_mutually_exclusive_group()
    store.add_argument("--reencode", type=int, metavar="SHORT_SIDE", help="re-encode videos to H.264, GOP 8")
    store.add_argument("--frames", type=int, metavar="N", help="store N uniformly sampled JPEG frames per video")
    return parser


def load_records(path: Path) -> list[Any]:
    """The records of one JSON file; raises ``ValueError`` naming the file if it is not a JSON list."""
    try:
        records = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as err:
        raise ValueError(f"{path}: cannot read JSON ({err})") from err
    if not isinstance(records, list):
        raise ValueError(f"{path}: expected a JSON list of records, got {type(records).__name__}")
    return records


def main(argv: list[str] | None = None) -> int:
    """Run ``lvlm shards``; returns 0 on success (even with skipped records), 1 if an input file is unusable."""
    args = build_parser().parse_args(argv)
    try:
        inputs = [(path, load_records(path)) for path in args.json_files]
    except ValueError as err:
        print(f"lvlm shards: {err}", file=sys.stderr)
        return 1
    try:
        folders = media_folders(args)
    except ValueError as err:
        print(f"lvlm shards: {err}", file=sys.stderr)
        return 1
    modalities = installed_modalities()
    args.out.mkdir(parents=True, exist_ok=True)
    used: set[str] = set()
    skipped: list[dict[str, Any]] = []
    written = 0
    pattern = str(args.out / f"{args.prefix}-%06d.tar")
    with ShardWriter(pattern, max_count=args.max_count, max_size=args.max_size) as writer:
        for path, records in inputs:
            for index, record in enumerate(records):
                raw_id = (
                    record.get("id", f"{path.stem}_{index}") if isinstance(record, dict) else f"{path.stem}_{index}"
                )
                key = sanitize_key(raw_id, used)
                try:
                    sample = convert_record(
                        record,
                        key,
                        modalities=modalities,
                        folders=folders,
                        reencode=args.reencode,
                        frames=args.frames,
                    )
                except SkippedSample as skip:
                    skipped.append({"key": key, "id": raw_id, "file": str(path), "index": index} | _reason(skip))
                    continue
                writer.write(sample)
                written += 1
    report = write_report(args.out, writer.paths, written, skipped, [str(p) for p, _ in inputs])
    print(json.dumps(report, indent=2))
    return 0


def media_folders(args: argparse.Namespace) -> dict[str, Path]:
    """The folder of each modality's paths: ``--image-folder``, ``--video-folder`` and every ``--folder NAME=DIR``."""
    folders = {"image": args.image_folder, "video": args.video_folder}
    for item in args.folder:
        name, sep, folder = item.partition("=")
        if not sep or not name or not folder:
            raise ValueError(f"--folder {item!r}: expected NAME=DIR (e.g. --folder depth=depths/)")
        folders[name] = Path(folder)
    return {name: folder for name, folder in folders.items() if folder is not None}


def _reason(skip: SkippedSample) -> dict[str, str]:
    return {"reason": skip.reason, "detail": skip.detail}


def write_report(
    out: Path, shards: list[Path], written: int, skipped: list[dict[str, Any]], inputs: list[str]
) -> dict[str, Any]:
    """Write ``report.json`` (counts) and ``skipped.jsonl`` (one line per skipped record) into ``out``."""
    report = {
        "inputs": inputs,
        "written": written,
        "skipped": len(skipped),
        "skipped_by_reason": dict(sorted(Counter(s["reason"] for s in skipped).items())),
        "shards": [p.name for p in shards],
        "skipped_list": "skipped.jsonl",
    }
    (out / "report.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    with open(out / "skipped.jsonl", "w", encoding="utf-8") as f:
        for line in skipped:
            f.write(json.dumps(line, ensure_ascii=False) + "\n")
    return report
