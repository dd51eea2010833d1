"""Records -> shards, in N worker processes, with the same shards and samples whatever N is.

Workers only convert records (read, check, decode or re-encode the media); results come back in input order and
the calling process alone writes the shards. So the samples, their order and the shard boundaries are exactly
those of a one-process run, for any number of workers (:mod:`lvlm.data.conversion_pool`).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lvlm.data.conversion_log import ConversionLog, Progress
from lvlm.data.conversion_pool import Outcome, ordered_outcomes
from lvlm.data.records import Record
from lvlm.data.shard_writer import ShardWriter
from lvlm.data.shards import SkippedSample, convert_safely
from lvlm.models.modality import Modality

SHARD_MTIME = 0  # tar header timestamps: fixed, so a conversion writes byte-identical shards every time


@dataclass(frozen=True)
class ConvertOptions:
    """How records become samples (see :func:`lvlm.data.shards.convert_record`)."""

    modalities: tuple[Modality, ...] = ()
    folders: tuple[tuple[str, Path], ...] = ()  # (modality name, folder its paths are relative to)
    reencode: int | None = None
    frames: int | None = None

    def as_kwargs(self) -> dict[str, Any]:
        return {
            "modalities": self.modalities,
            "folders": dict(self.folders),
            "reencode": self.reencode,
            "frames": self.frames,
        }


def skip_entry(record: Record, skip: SkippedSample) -> dict[str, Any]:
    """The report line of a skipped record."""
    return {
        "key": record.key,
        "id": record.raw_id,
        "file": record.file,
        "index": record.index,
        "reason": skip.reason,
        "detail": skip.detail,
    }


def renamed_entry(record: Record) -> dict[str, Any]:
    """The report line of a sample whose key got a ``-N`` suffix (its id repeats an earlier record's)."""
    return {"key": record.key, "id": record.raw_id, "file": record.file, "index": record.index}


def write_shards(
    records: Sequence[Record],
    log: ConversionLog,
    progress: Progress,
    options: ConvertOptions,
    *,
    prefix: str = "shard",
    max_count: int = 10_000,
    max_size: float = 1e9,
    workers: int = 1,
    on_record: Callable[[int], None] = lambda n: None,
) -> None:
    """Convert ``records[progress.next:]`` into shards in ``log.work``, logging each finished shard.

    Args:
        records: Every record of the inputs (checked, with keys).
        log: The work folder's log.
        progress: What is already done (empty for a fresh run).
        options: How records become samples.
        prefix: Shard names ``PREFIX-000000.tar``.
        max_count: Samples per shard.
        max_size: Bytes per shard.
        workers: Processes converting records (1: in this process).
        on_record: Called with the number of records just handled (progress bars).
    """
    pending: list[dict[str, Any]] = []
    shard = {"modalities": Counter(), "renamed": []}
    position = {"next": progress.next}

    def finished(path: Path, count: int) -> None:
        log.append(
            {
                "shard": path.name,
                "samples": count,
                "samples_by_modality": dict(sorted(shard["modalities"].items())),
                "next": position["next"],
                "skipped": list(pending),
                "renamed": list(shard["renamed"]),
            }
        )
        pending.clear()
        shard.update(modalities=Counter(), renamed=[])

    pattern = str(log.work / f"{prefix}-%06d.tar")
    start = len(progress.shards)
    with ShardWriter(pattern, max_count, max_size, mtime=SHARD_MTIME, start=start, on_finish=finished) as writer:
        for record, outcome in convert_in_order(records[progress.next :], options, workers):
            if isinstance(outcome, SkippedSample):
                pending.append(skip_entry(record, outcome))
            else:
                position["next"] = record.ordinal  # a shard finished by this write ends before this record
                writer.write(outcome)
                shard["modalities"][record.modality()] += 1
                if record.renamed:
                    shard["renamed"].append(renamed_entry(record))
            on_record(1)
        position["next"] = len(records)
        writer.close()
    log.append({"done": True, "next": len(records), "skipped": pending, "renamed": []})


def convert_in_order(
    records: Sequence[Record], options: ConvertOptions, workers: int
) -> Iterator[tuple[Record, Outcome]]:
    """``(record, outcome)`` for every record, in order; records with a known problem are not converted."""
    if workers > 1:
        yield from ordered_outcomes(records, options.as_kwargs(), workers)
        return
    for record in records:
        yield record, record.problem or convert_safely(record.value, record.key, **options.as_kwargs())
