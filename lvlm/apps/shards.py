"""``lvlm shards``: Video-LLaVA/LLaVA JSON lists + media folders -> WebDataset shards, a manifest and a report.

Example::

    lvlm shards llava_image_tune_.json videochatgpt_tune_.json --image-folder data/llava_image_tune \\
        --video-folder data/videochatgpt_tune --out shards/stage2 --reencode 336 --max-count 5000 --workers 16

Every input file is read and every record checked before any media is touched; a bad record is skipped and
listed (file, index, key, reason) in ``OUT/skipped.jsonl``, never a reason to stop. The result is built in a
work folder beside ``OUT`` and moved into place when complete; ``--resume`` continues an interrupted run.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tqdm
from jsonargparse import ArgumentParser

from lvlm.apps import command
from lvlm.core.errors import UserError
from lvlm.core.outputs import check_output, staged_output
from lvlm.data.conversion import ConvertOptions, write_shards
from lvlm.data.conversion_log import ConversionLog, Progress, work_folder
from lvlm.data.manifest import MANIFEST_NAME, build_manifest
from lvlm.data.records import Record, load_records, needed_folders
from lvlm.modalities.catalog import installed_modalities


@dataclass
class Shards:
    """Convert Video-LLaVA/LLaVA JSON lists (id, image, video, conversations) and their media folders into
    WebDataset shards (docs/data-format.md). Bad records are skipped and listed in OUT/skipped.jsonl; counts go
    to OUT/report.json; OUT/manifest.json lists the shards for recipes.

    Attributes:
        json_files: JSON files, each a list of records.
        out: output folder for shards, manifest and report.
        image_folder: folder that 'image' paths are relative to.
        video_folder: folder that 'video' paths are relative to.
        folder: NAME=DIR, the folder that the paths of modality NAME are relative to (a plugin's:
            --folder depth=depths/); repeatable.
        prefix: shard name prefix: PREFIX-000000.tar.
        max_count: samples per shard.
        max_size: bytes per shard.
        workers: processes converting records.
        resume: continue an interrupted conversion into --out.
        overwrite: replace a non-empty --out once the new one is done.
        no_progress: no progress bar on stderr.
        reencode: SHORT_SIDE: re-encode videos to H.264, GOP 8.
        frames: store N uniformly sampled JPEG frames per video.
    """

    json_files: list[Path]
    out: Path
    image_folder: Path | None = None
    video_folder: Path | None = None
    folder: list[str] = field(default_factory=list)
    prefix: str = "shard"
    max_count: int = 10_000
    max_size: float = 1e9
    workers: int = 1
    resume: bool = False
    overwrite: bool = False
    no_progress: bool = False
    reencode: int | None = None
    frames: int | None = None

    def run(self) -> int:
        """Convert; returns 0 when the shards, manifest and report are written (even with skips)."""
        return shards(self)


def build_parser() -> ArgumentParser:
    """The parser of ``lvlm shards`` (jsonargparse, from :class:`Shards`)."""
    return command.build_parser(Shards, "lvlm shards", positional="json_files")


def main(argv: list[str] | None = None) -> int:
    """Run ``lvlm shards``; returns the exit status."""
    return command.run(Shards, argv, "lvlm shards", positional="json_files")


def shards(args: Shards) -> int:
    """Convert the records of ``args.json_files`` into shards under ``args.out``.

    Raises:
        UserError: An unusable input file, folder or option, or an output that would destroy an input or mix
            with an earlier one (``lvlm`` prints the message, no traceback, and exits 2).
    """
    _check_options(args)
    modalities = installed_modalities()
    folders = media_folders(args, [m.name for m in modalities])
    records = load_records(args.json_files, modalities)
    _check_folders(folders, records)
    inputs = [*args.json_files, *folders.values()]
    log = ConversionLog(work_folder(args.out))
    check_output(log.work, inputs, overwrite=True, what="the work folder of --out")
    settings = _settings(args, folders)
    if args.resume:
        progress = log.resume(settings)
        check_output(args.out, inputs, overwrite=log.saved_settings()["overwrite"] or progress.done, what="--out")
    else:
        if log.work.exists() and not args.overwrite:
            raise UserError(
                f"an interrupted conversion into {args.out} exists ({log.work}): pass --resume to continue it, "
                "or --overwrite to start again"
            )
        check_output(args.out, inputs, overwrite=args.overwrite, what="--out")
        progress = log.start(settings)
    if not progress.done:
        options = ConvertOptions(tuple(modalities), tuple(folders.items()), args.reencode, args.frames)
        with _progress_bar(len(records), progress.next, disable=args.no_progress) as bar:
            write_shards(
                records,
                log,
                progress,
                options,
                prefix=args.prefix,
                max_count=args.max_count,
                max_size=args.max_size,
                workers=args.workers,
                on_record=bar.update,
            )
        progress = log.resume(settings)
    report = publish(args.out, log, progress, records, [str(p) for p in args.json_files])
    print(json.dumps({k: v for k, v in report.items() if k != "renamed"} | {"renamed": len(report["renamed"])}))
    return 0


def publish(out: Path, log: ConversionLog, progress: Progress, records: list[Record], inputs: list[str]) -> dict:
    """Move the finished shards into ``out`` with ``manifest.json``, ``report.json`` and ``skipped.jsonl``.

    ``out`` is replaced whole (built in a temporary sibling, then swapped in), so it holds exactly the shards
    the report lists. Returns the report.
    """
    skipped, renamed = progress.entries("skipped"), progress.entries("renamed")
    by_reason = Counter(entry["reason"] for entry in skipped)
    manifest = build_manifest(progress.shards, by_reason)
    report = {
        "inputs": inputs,
        "records": len(records),
        "written": manifest["samples"],
        "samples_by_modality": manifest["samples_by_modality"],
        "skipped": len(skipped),
        "skipped_by_reason": manifest["skipped_by_reason"],
        "renamed": renamed,
        "shards": [shard["url"] for shard in progress.shards],
        "manifest": MANIFEST_NAME,
        "skipped_list": "skipped.jsonl",
    }
    with staged_output(out, directory=True) as staged:
        for shard in progress.shards:
            _link_or_copy(log.work / shard["url"], staged / shard["url"])
        (staged / MANIFEST_NAME).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
        (staged / "report.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
        with open(staged / "skipped.jsonl", "w", encoding="utf-8") as handle:
            handle.writelines(json.dumps(entry) + "\n" for entry in skipped)  # ASCII: ids may hold lone surrogates
    log.remove()
    return report


def _check_options(args: Shards) -> None:
    for first, second in [("resume", "overwrite"), ("reencode", "frames")]:
        if getattr(args, first) and getattr(args, second):
            raise UserError(f"--{first} and --{second} do not go together")
    for flag, value in [("--max-count", args.max_count), ("--workers", args.workers), ("--max-size", args.max_size)]:
        if value < 1:
            raise UserError(f"{flag} must be at least 1, got {value}")
    for flag, value in [("--reencode", args.reencode), ("--frames", args.frames)]:
        if value is not None and value < 1:
            raise UserError(f"{flag} must be at least 1, got {value}")
    if not args.prefix or any(c in args.prefix for c in "/\\%.\x00"):
        raise UserError(f"--prefix {args.prefix!r} must be a non-empty name without '/', '\\\\', '%' or '.'")


def media_folders(args: Shards, installed: list[str]) -> dict[str, Path]:
    """The folder of each modality's paths: ``--image-folder``, ``--video-folder`` and every ``--folder NAME=DIR``.

    Raises:
        UserError: a malformed ``--folder``, or one naming a modality that is not installed (``installed``).
    """
    folders = {"image": args.image_folder, "video": args.video_folder}
    for item in args.folder:
        name, sep, folder = item.partition("=")
        if not sep or not name or not folder:
            raise UserError(f"--folder {item!r}: expected NAME=DIR (e.g. --folder depth=depths/)")
        if name not in installed:
            raise UserError(
                f"--folder {item!r}: no modality {name!r} is installed; the installed ones: {', '.join(installed)} "
                "(a plugin's modality is installed with its package, see docs/extending.md)"
            )
        folders[name] = Path(folder)
    return {name: folder for name, folder in folders.items() if folder is not None}


def _check_folders(folders: dict[str, Path], records: list[Record]) -> None:
    for modality, folder in folders.items():
        if not folder.is_dir():
            raise UserError(f"the {modality} folder {folder} is not a folder")
    for modality, count in needed_folders(records).items():
        if count and modality not in folders:
            first = next(r for r in records if r.problem is None and r.media.get(modality))
            raise UserError(
                f"{first.file}: {count} record(s) name a '{modality}' (the first: index {first.index}) "
                f"but no --{modality}-folder (or --folder {modality}=DIR) was given"
            )


def _settings(args: Shards, folders: dict[str, Path]) -> dict[str, Any]:
    """What decides the shards' content; a resumed run must have the same (``overwrite`` excepted)."""

    def identity(path: Path) -> dict[str, Any]:
        stat = path.stat()
        return {"path": os.path.abspath(path), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}

    def folder(path: Path | None) -> str | None:
        return None if path is None else os.path.abspath(path)

    return {
        "inputs": [identity(p) for p in args.json_files],
        "image_folder": folder(args.image_folder),
        "video_folder": folder(args.video_folder),
        "folders": {name: folder(path) for name, path in sorted(folders.items())},
        "out": os.path.abspath(args.out),
        "prefix": args.prefix,
        "max_count": args.max_count,
        "max_size": args.max_size,
        "reencode": args.reencode,
        "frames": args.frames,
        "overwrite": args.overwrite,
    }


def _progress_bar(total: int, done: int, disable: bool) -> tqdm.tqdm:
    """Records done, rate and ETA on stderr: redrawn twice a second on a terminal, every 30 s in a log file."""
    tqdm.tqdm.monitor_interval = 0  # no monitor thread: worker processes are forked from this one
    interactive = sys.stderr.isatty()
    return tqdm.tqdm(
        total=total,
        initial=done,
        unit="rec",
        desc="lvlm shards",
        file=sys.stderr,
        mininterval=0.5 if interactive else 30.0,
        disable=disable,
        dynamic_ncols=interactive,
    )


def _link_or_copy(source: Path, target: Path) -> None:
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)
