"""``lvlm predict``: batched generation over a question file (JSON list or JSONL) or WebDataset shards → JSONL.

    lvlm predict --model CKPT --questions questions.json --media-root media/ --out predictions.jsonl
    lvlm predict --model CKPT --shards 'val-{000000..000003}.tar' --out predictions.jsonl --num-processes 2
    torchrun --nproc-per-node 4 -m lvlm.apps.predict --model CKPT --questions q.json --out p.jsonl

Each line is ``{"key", "question", "answer", "prediction", ...metadata}``, in input order. Skipped questions
(unusable records, missing or undecodable media, unreadable shard parts, ...) are listed with source, key and
reason in ``OUT.skipped.jsonl`` and summarised on stderr. Exit status: 0 the run finished (skipped questions
included), 2 refused before any work (bad arguments, an unusable input file, an output that would overwrite
an input or an earlier result); an interrupted run is continued with ``--resume``.
"""

from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from jsonargparse import ArgumentParser

from lvlm.apps import command
from lvlm.apps.predict_output import PartialRun, ResumeError, skipped_path
from lvlm.apps.predict_parallel import PredictJob, output_files, run_distributed, run_spawned
from lvlm.core.errors import UserError
from lvlm.core.outputs import check_output
from lvlm.inference.batch_generate import GenerationSettings
from lvlm.inference.predict import PredictionResult
from lvlm.inference.questions import Question
from lvlm.inference.session import TemplateNotRecordedError

SHOWN_SKIPPED = 20


@dataclass
class Predict:
    """Batched generation over a question file or WebDataset shards to JSONL.

    Attributes:
        model: checkpoint directory (lvlm, transformers or original layout).
        out: merged JSONL of predictions (written when the run is complete).
        questions: JSON list or JSONL of question objects (POPE's own files included); or give --shards.
        shards: WebDataset shards (paths, brace or glob patterns), read in order; or give --questions.
        media_root: folder media paths are relative to (default: the question file's folder).
        encoding: of the question file (default auto: UTF-8, else Latin-1).
        overwrite: replace an existing output (and any partial run).
        resume: continue an interrupted run from OUT.partial.
        batch_size: questions per generate call.
        max_new_tokens: longest answer in tokens.
        temperature: 0 = greedy (default); > 0 samples.
        top_p: nucleus sampling mass.
        seed: seed of the sampler (with --temperature > 0).
        num_processes: spawn N CPU worker processes (not with torchrun).
        template: override the checkpoint's chat template (vicuna_v1, llava_v1, plain).
        num_frames: frames per video (default: as many as training used).
        image_mode: override how images are fitted (default: as the model records).
        dtype: model dtype, e.g. bfloat16 (default: as saved).
        device: cpu or cuda (under torchrun: cuda:LOCAL_RANK).
        no_progress: no progress bar on stderr.
    """

    model: str
    out: str
    questions: str | None = None
    shards: list[str] | None = None
    media_root: str | None = None
    encoding: str = "auto"
    overwrite: bool = False
    resume: bool = False
    batch_size: int = 8
    max_new_tokens: int = 128
    temperature: float = 0.0
    top_p: float = 1.0
    seed: int | None = None
    num_processes: int = 1
    template: str | None = None
    num_frames: int | None = None
    image_mode: Literal["pad", "crop"] | None = None
    dtype: str | None = None
    device: str = "cpu"
    no_progress: bool = False

    def run(self) -> int:
        """Run ``lvlm predict``; returns the exit status (a ``UserError``: refused before any work)."""
        if (self.questions is None) == (self.shards is None):
            raise UserError("give one of --questions and --shards")
        if self.num_processes < 1:
            raise UserError("--num-processes must be >= 1")
        if self.num_processes > 1 and int(os.environ.get("WORLD_SIZE", "1")) > 1:
            raise UserError("--num-processes spawns workers itself; under torchrun leave it at 1")
        if not Path(self.model).exists():
            raise UserError(f"--model {self.model}: no such checkpoint directory")
        start = time.perf_counter()
        try:
            result = _run(job_from_args(self), self)
        except (TemplateNotRecordedError, FileNotFoundError) as err:
            raise UserError(f"--model {self.model}: {err}") from None
        if result is not None:
            report(result, self.out, time.perf_counter() - start)
        return 0


def build_parser() -> ArgumentParser:
    """The parser of ``lvlm predict`` (jsonargparse, from :class:`Predict`)."""
    return command.build_parser(Predict, "lvlm predict")


def job_from_args(args: Predict) -> PredictJob:
    settings = GenerationSettings(args.max_new_tokens, args.temperature, args.top_p, args.seed)
    session_options = {
        "template": args.template,
        "num_frames": args.num_frames,
        "image_mode": args.image_mode,
        "torch_dtype": args.dtype,
        "device": args.device,
    }
    return PredictJob(
        model_dir=args.model,
        out=args.out,
        questions_json=args.questions,
        media_root=args.media_root,
        shards=args.shards or [],
        settings=settings,
        batch_size=args.batch_size,
        session_options=session_options,
        encoding=args.encoding,
        progress=not args.no_progress,
    )


def check_inputs(job: PredictJob, overwrite: bool) -> dict[int, str]:
    """Read and check every question before any model loads; refuse outputs that would destroy an input.

    Returns:
        ``index -> key`` of every question of the input.
    """
    keys: dict[int, str] = {}
    invalid: list[Question] = []
    media: list[str] = []
    for question in job.all_questions():
        keys[question.index] = question.key
        if question.error is not None:
            invalid.append(question)
        media += [source for _, source in question.media if isinstance(source, str)]
    inputs = [*job.input_paths(), *dict.fromkeys(media)]
    for path in output_files(job.out):
        check_output(path, inputs, overwrite=overwrite or path.name.endswith(".partial"), what="--out")
    if invalid:
        print(f"{len(invalid)} of {len(keys)} questions cannot be asked; they are skipped and listed in "
              f"{skipped_path(job.out)}:", file=sys.stderr)  # fmt: skip
        for q in invalid[:SHOWN_SKIPPED]:
            print(f"  {q.source} (key {q.key}): {getattr(q.error, 'reason', 'invalid')}: {q.error}", file=sys.stderr)
    return keys


def check_media_kinds(job: PredictJob, takes: list[str]) -> None:
    """Refuse an input whose questions name media of a modality the model lacks (the wrong model for it).

    Raises:
        UserError: naming the modality, how many questions name it, the first one, and the model's modalities.
    """
    lacking: dict[str, list[Question]] = {}
    for question in job.all_questions():
        for kind in dict.fromkeys(kind for kind, _ in question.media):
            if kind not in takes:
                lacking.setdefault(kind, []).append(question)
    for kind, questions in lacking.items():
        first = questions[0]
        raise UserError(
            f"{len(questions)} question(s) name {kind!r} media (the first: {first.source}, key {first.key}) but "
            f"the model {job.model_dir} has no {kind!r} modality; it takes {', '.join(takes)}"
        )


def recorded_modality_names(model_dir: str | Path) -> list[str] | None:
    """The modalities an lvlm model directory records (``lvlm_config.json``'s towers), read without its weights;
    None for other layouts (their workers check each question as they load the model)."""
    try:
        towers = json.loads((Path(model_dir) / "lvlm_config.json").read_text()).get("towers")
    except (OSError, ValueError, AttributeError):
        return None
    return sorted(towers) if isinstance(towers, dict) and towers else None


def still_to_answer(partial: PartialRun, keys: dict[int, str]) -> list[int]:
    """The indices not in the partial folder; a question there under another key means the input changed."""
    done = partial.done()
    for index, key in done.items():
        if keys.get(index) != key:
            raise ResumeError(
                f"--resume: {partial.dir} answered question {index} as key {key!r}, but the input now has "
                f"{keys.get(index)!r} there: the input changed; pass --overwrite to start over"
            )
    if done:
        print(f"resuming: {len(done)} of {len(keys)} questions already done in {partial.dir}", file=sys.stderr)
    return [i for i in keys if i not in done]


def report(result: PredictionResult, out: str, seconds: float) -> None:
    print(f"wrote {len(result.predictions)} predictions to {out} in {seconds:.1f} s; skipped {len(result.skipped)}")
    if result.skipped:
        print(f"skipped {len(result.skipped)} question(s), listed in {skipped_path(out)}:", file=sys.stderr)
        for s in result.skipped[:SHOWN_SKIPPED]:
            print(f"  {s.source} (key {s.key}): {s.reason}: {s.detail}", file=sys.stderr)
        if len(result.skipped) > SHOWN_SKIPPED:
            print(f"  ... and {len(result.skipped) - SHOWN_SKIPPED} more", file=sys.stderr)


def _run(job: PredictJob, args: Predict) -> PredictionResult | None:
    keys = check_inputs(job, args.overwrite)
    partial = PartialRun(job.out)
    identity = job.identity()
    partial.check(identity, args.resume, args.overwrite)
    todo = still_to_answer(partial, keys) if args.resume else list(keys)  # read-only: every rank checks

    def prepare() -> list[int]:
        partial.prepare(identity, args.resume)
        return todo

    if int(os.environ.get("WORLD_SIZE", "1")) > 1 or args.num_processes > 1:
        recorded = recorded_modality_names(job.model_dir)  # no model in this process: read what it records
        if recorded:
            check_media_kinds(job, recorded)
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        return run_distributed(job, prepare)  # None on ranks other than 0
    if args.num_processes > 1:
        run_spawned(job, prepare(), args.num_processes)
    else:
        session = job.load_session()  # before the partial folder exists: a checkpoint error leaves nothing behind
        check_media_kinds(job, sorted(session.modalities))
        job.run(prepare(), session=session)
    return partial.finish()


def main(argv: list[str] | None = None) -> int:
    """Run ``lvlm predict`` (also ``python -m lvlm.apps.predict`` under torchrun); returns the exit status."""
    return command.run(Predict, argv, "lvlm predict")
