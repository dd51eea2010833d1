"""Multi-process prediction: shard the questions by index, answer them in N processes, merge into ONE file.

Process ``r`` of ``N`` answers the questions whose index ``i`` has ``i % N == r`` and writes
``OUT.part{r}-of-{N}`` lines ``{"index": i, "record": ...}`` (or ``{"index": i, "skipped": ...}``). The merge
sorts by index, so the merged file is ordered like the input, and each record was written by the process that
answered it, from its own question: keys, questions and references cannot drift apart (the original's bug).

Two launchers: ``--num-processes N`` spawns CPU workers with ``torch.multiprocessing``; under ``torchrun``
(``WORLD_SIZE``/``RANK`` set) every rank runs its share, a gloo barrier waits for all, and rank 0 merges.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from lvlm.inference.batch_generate import GenerationSettings
from lvlm.inference.predict import PredictionResult, SkippedQuestion, predict
from lvlm.inference.questions import Question, questions_from_json, questions_from_shards
from lvlm.inference.session import load_session


@dataclass
class PredictJob:
    """Everything a prediction process needs (picklable: each spawned worker re-reads the inputs itself).

    Attributes:
        model_dir: the checkpoint.
        out: the merged JSONL file; the skipped questions go to ``OUT`` with suffix ``.skipped.jsonl``.
        questions_json: a JSON list of questions (or ``shards``).
        media_root: folder relative media paths start from (default: the JSON file's folder).
        shards: WebDataset shard paths or brace patterns.
        settings, batch_size: generation.
        session_options: keyword arguments of :func:`~lvlm.inference.session.load_session`.
    """

    model_dir: str
    out: str
    questions_json: str | None = None
    media_root: str | None = None
    shards: list[str] = field(default_factory=list)
    settings: GenerationSettings = field(default_factory=GenerationSettings)
    batch_size: int = 8
    session_options: dict[str, Any] = field(default_factory=dict)

    def questions(self, rank: int = 0, world: int = 1) -> Iterator[Question]:
        """This process's share of the questions: every ``world``-th one from ``rank``."""
        source = (
            questions_from_json(self.questions_json, self.media_root)
            if self.questions_json is not None
            else questions_from_shards(self.shards)
        )
        return (q for q in source if q.index % world == rank)

    def run(self, rank: int = 0, world: int = 1) -> PredictionResult:
        options = dict(self.session_options)
        if str(options.get("device", "cpu")) == "cuda":
            options["device"] = f"cuda:{int(os.environ.get('LOCAL_RANK', rank)) % torch.cuda.device_count()}"
        session = load_session(self.model_dir, **options)
        return predict(session, self.questions(rank, world), self.settings, self.batch_size)


def skipped_path(out: str | Path) -> Path:
    out = Path(out)
    return out.with_name(out.name.removesuffix(".jsonl") + ".skipped.jsonl")


def part_path(out: str | Path, rank: int, world: int) -> Path:
    out = Path(out)
    return out.with_name(f"{out.name}.part{rank}-of-{world}")


def write_part(path: Path, result: PredictionResult) -> None:
    with path.open("w", encoding="utf-8") as f:
        for index, record in zip(result.indices, result.predictions):
            f.write(json.dumps({"index": index, "record": record}, ensure_ascii=False) + "\n")
        for skipped in result.skipped:
            f.write(json.dumps({"index": skipped.index, "skipped": skipped.to_dict()}, ensure_ascii=False) + "\n")


def write_outputs(out: str | Path, result: PredictionResult) -> None:
    """The merged predictions (input order) and, if any question was skipped, the skipped report."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    order = sorted(range(len(result.indices)), key=result.indices.__getitem__)
    with out.open("w", encoding="utf-8") as f:
        for i in order:
            f.write(json.dumps(result.predictions[i], ensure_ascii=False) + "\n")
    report = skipped_path(out)
    if result.skipped:
        with report.open("w", encoding="utf-8") as f:
            for skipped in sorted(result.skipped, key=lambda s: s.index):
                f.write(json.dumps(skipped.to_dict(), ensure_ascii=False) + "\n")
    elif report.exists():
        report.unlink()


def merge_parts(out: str | Path, world: int) -> PredictionResult:
    """Read every process's part file, write the merged outputs, delete the parts."""
    merged = PredictionResult()
    for rank in range(world):
        path = part_path(out, rank, world)
        for line in path.read_text(encoding="utf-8").splitlines():
            item = json.loads(line)
            if "record" in item:
                merged.indices.append(item["index"])
                merged.predictions.append(item["record"])
            else:
                merged.skipped.append(SkippedQuestion(**item["skipped"]))
    write_outputs(out, merged)
    for rank in range(world):
        part_path(out, rank, world).unlink()
    order = sorted(range(len(merged.indices)), key=merged.indices.__getitem__)
    merged.predictions = [merged.predictions[i] for i in order]
    merged.indices = sorted(merged.indices)
    merged.skipped.sort(key=lambda s: s.index)
    return merged


def _spawned_worker(rank: int, world: int, job: PredictJob, threads: int) -> None:
    torch.set_num_threads(threads)
    write_part(part_path(job.out, rank, world), job.run(rank, world))


def run_spawned(job: PredictJob, num_processes: int) -> PredictionResult:
    """Answer with ``num_processes`` spawned worker processes (CPU threads split between them), then merge."""
    import torch.multiprocessing as mp

    threads = max(1, (os.cpu_count() or 1) // num_processes)
    mp.spawn(_spawned_worker, args=(num_processes, job, threads), nprocs=num_processes, join=True)
    return merge_parts(job.out, num_processes)


def run_distributed(job: PredictJob) -> PredictionResult | None:
    """Under torchrun: answer this rank's share, wait for all ranks, merge on rank 0 (others return None)."""
    import torch.distributed as dist

    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    started = not dist.is_initialized()
    if started:
        dist.init_process_group("gloo")
    try:
        write_part(part_path(job.out, rank, world), job.run(rank, world))
        dist.barrier()
        result = merge_parts(job.out, world) if rank == 0 else None
        dist.barrier()
        return result
    finally:
        if started:
            dist.destroy_process_group()
