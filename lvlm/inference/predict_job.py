"""One prediction job, answered by one process or shared by index between N processes.

Process ``r`` of ``N`` answers the questions whose index ``i`` has ``i % N == r`` and appends each finished
batch to ``OUT.partial/rank{r}-of-{N}.jsonl`` (:mod:`lvlm.inference.predict_output`); the merge sorts by index, so
the output is ordered like the input and each record was written by the process that answered it, from its
own question: keys, questions and references cannot drift apart (the original's bug). Questions already in
the partial folder (``--resume``) are not asked again.

Two launchers: ``--num-processes N`` spawns CPU workers with ``torch.multiprocessing``; under ``torchrun``
(``WORLD_SIZE``/``RANK`` set) every rank runs its share, a gloo barrier waits for all, and rank 0 merges.
Not ``Trainer.predict`` with a ``BasePredictionWriter``: its distributed sampler pads ranks with repeated
samples and it cannot skip questions already answered (``--resume``) nor report a bad item and go on.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Collection, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from lvlm.core.worker_lifetime import end_with_parent
from lvlm.inference.batch_generate import GenerationSettings
from lvlm.inference.predict import PredictionResult, predict
from lvlm.inference.predict_output import PartialRun, PartWriter, partial_path, skipped_path
from lvlm.inference.question_files import questions_from_file
from lvlm.inference.question_shards import questions_from_shards, shard_urls
from lvlm.inference.questions import Question
from lvlm.inference.session import InferenceSession, load_session
from lvlm.models.modality import Modality


def _local(url: str) -> bool:
    return "://" not in url and not url.startswith("pipe:")


@dataclass
class PredictJob:
    """Everything a prediction process needs (picklable: each spawned worker re-reads the inputs itself).

    Attributes:
        model_dir: the checkpoint.
        out: the final JSONL file (report of skipped questions: ``OUT`` with suffix ``.skipped.jsonl``).
        questions_json: a JSON-list or JSONL question file (or ``shards``).
        media_root: folder relative media paths start from (default: the question file's folder).
        shards: WebDataset shard paths or brace/glob patterns.
        settings, batch_size: generation.
        session_options: keyword arguments of :func:`~lvlm.inference.session.load_session`.
        encoding: of the question file (``auto``: UTF-8, else Latin-1, reported).
        progress: show a progress bar on stderr.
    """

    model_dir: str
    out: str
    questions_json: str | None = None
    media_root: str | None = None
    shards: list[str] = field(default_factory=list)
    settings: GenerationSettings = field(default_factory=GenerationSettings)
    batch_size: int = 8
    session_options: dict[str, Any] = field(default_factory=dict)
    encoding: str = "auto"
    progress: bool = True

    def all_questions(self, modalities: Mapping[str, Modality] | None = None) -> Iterator[Question]:
        """Every question of the input, in order (unusable ones carry their error); markers are the placeholders
        of ``modalities`` (the model's), else of the installed modalities."""
        if self.questions_json is not None:
            return iter(questions_from_file(self.questions_json, self.media_root, self.encoding, modalities)[0])
        return questions_from_shards(self.shards, modalities)

    def input_paths(self) -> list[str]:
        """The local files and folders this job reads (an output may be none of them, nor inside one)."""
        paths = [self.model_dir]
        if self.questions_json is not None:
            paths.append(self.questions_json)
        else:
            paths += [url for url in shard_urls(self.shards) if _local(url)]
        return paths

    def identity(self) -> dict[str, Any]:
        """What a resumed run must share with the interrupted one (not the batch size or process count)."""
        absolute = os.path.abspath
        return {
            "model": absolute(self.model_dir),
            "questions": None if self.questions_json is None else absolute(self.questions_json),
            "media_root": None if self.media_root is None else absolute(self.media_root),
            "shards": [absolute(u) if _local(u) else u for u in shard_urls(self.shards)] if self.shards else [],
            "encoding": self.encoding,
            "settings": asdict(self.settings),
            "session": {k: v for k, v in sorted(self.session_options.items()) if k != "device"},
        }

    def load_session(self, rank: int = 0) -> InferenceSession:
        options = dict(self.session_options)
        if str(options.get("device", "cpu")) == "cuda":
            options["device"] = f"cuda:{int(os.environ.get('LOCAL_RANK', rank)) % torch.cuda.device_count()}"
        return load_session(self.model_dir, **options)

    def run(
        self, todo: Collection[int], rank: int = 0, world: int = 1, session: InferenceSession | None = None
    ) -> None:
        """Answer this process's share of the questions ``todo``, appending each batch to its part file."""
        mine = {i for i in todo if i % world == rank}
        if not mine:
            return
        session = session or self.load_session(rank)
        questions = (q for q in self.all_questions(session.modalities) if q.index in mine)
        writer = PartWriter(PartialRun(self.out).part_file(rank, world))
        bar = tqdm(
            total=len(mine), desc="predict" if world == 1 else f"predict rank {rank}", unit="q",
            position=rank, disable=not self.progress, file=sys.stderr, dynamic_ncols=True,
        )  # fmt: skip

        def on_batch(answered: int, skipped: int) -> None:
            bar.set_postfix(skipped=skipped, refresh=False)
            bar.update(answered + skipped - bar.n)

        try:
            predict(session, questions, self.settings, self.batch_size, on_batch=on_batch, sink=writer.write)
        finally:
            writer.close()
            bar.close()


def _spawned_worker(rank: int, world: int, job: PredictJob, todo: list[int], threads: int, parent: int) -> None:
    end_with_parent(parent)  # killed with the command: a resumed run must be the only writer of the partial folder
    torch.set_num_threads(threads)
    job.run(todo, rank, world)


def run_spawned(job: PredictJob, todo: list[int], num_processes: int) -> None:
    """Answer ``todo`` with ``num_processes`` spawned worker processes (CPU threads split between them)."""
    import torch.multiprocessing as mp

    threads = max(1, (os.cpu_count() or 1) // num_processes)
    setup = (num_processes, job, todo, threads, os.getpid())
    mp.spawn(_spawned_worker, args=setup, nprocs=num_processes, join=True)


def run_distributed(job: PredictJob, prepare: Callable[[], list[int]]) -> PredictionResult | None:
    """Under torchrun: rank 0 prepares the partial folder, every rank answers its share, rank 0 merges.

    Args:
        job: the job.
        prepare: called on rank 0 before anyone answers; returns the indices still to answer.

    Returns:
        The merged result on rank 0, None on the others.
    """
    import torch.distributed as dist

    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    started = not dist.is_initialized()
    if started:
        dist.init_process_group("gloo")
    try:
        shared = [prepare() if rank == 0 else None]
        dist.broadcast_object_list(shared, src=0)
        job.run(shared[0], rank, world)
        dist.barrier()
        result = PartialRun(job.out).finish() if rank == 0 else None
        dist.barrier()
        return result
    finally:
        if started:
            dist.destroy_process_group()


def output_files(out: str | Path) -> list[Path]:
    """Every path a job writes: the final file, the skipped report and the partial folder."""
    return [Path(out), skipped_path(out), partial_path(out)]
