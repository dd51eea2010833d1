"""One prediction run, start to finish: check the inputs, answer what is left, merge, report.

:func:`run_prediction` is what ``lvlm predict`` and ``lvlm eval --model`` both call. Before any model loads it
reads every question, refuses an output that would overwrite an input or an earlier result, and refuses to start
over an interrupted run unless told to resume it or overwrite it (:class:`~lvlm.inference.predict_output.PartialRun`).
It then answers the questions not yet answered in one process, in ``num_processes`` spawned ones, or in this rank's
share under ``torchrun`` (:mod:`lvlm.inference.predict_job`), and merges the parts into the output.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

from lvlm.core.errors import UserError
from lvlm.core.outputs import check_output
from lvlm.inference.predict import PredictionResult
from lvlm.inference.predict_job import PredictJob, output_files, run_distributed, run_spawned
from lvlm.inference.predict_output import PartialRun, ResumeError, skipped_path
from lvlm.inference.questions import Question
from lvlm.inference.session import TemplateNotRecordedError

SHOWN_SKIPPED = 20


def run_prediction(
    job: PredictJob, *, resume: bool = False, overwrite: bool = False, num_processes: int = 1
) -> PredictionResult | None:
    """Answer every question of ``job`` into ``job.out`` (and ``OUT.skipped.jsonl``), then print a summary.

    Args:
        job: what to answer, with which model, into which file.
        resume: continue the interrupted run in ``OUT.partial`` (same settings and inputs).
        overwrite: replace an existing output (and any interrupted run).
        num_processes: spawn this many CPU worker processes (1: this process; under torchrun: leave at 1).

    Returns:
        The merged result; None on torchrun ranks other than 0.

    Raises:
        UserError: refused before any work (bad settings, an unusable input, an output in the way).
    """
    if num_processes < 1:
        raise UserError("--num-processes must be >= 1")
    if num_processes > 1 and int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise UserError("--num-processes spawns workers itself; under torchrun leave it at 1")
    if not Path(job.model_dir).exists():
        raise UserError(f"--model {job.model_dir}: no such checkpoint directory")
    start = time.perf_counter()
    try:
        result = _run(job, resume, overwrite, num_processes)
    except (TemplateNotRecordedError, FileNotFoundError) as err:
        raise UserError(f"--model {job.model_dir}: {err}") from None
    if result is not None:
        report(result, job.out, time.perf_counter() - start)
    return result


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
        for modality in dict.fromkeys(modality for modality, _ in question.media):
            if modality not in takes:
                lacking.setdefault(modality, []).append(question)
    for modality, questions in lacking.items():
        first = questions[0]
        raise UserError(
            f"{len(questions)} question(s) name {modality!r} media (the first: {first.source}, key {first.key}) but "
            f"the model {job.model_dir} has no {modality!r} modality; it takes {', '.join(takes)}"
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
    """One line on stdout (written, skipped, time); the skipped questions on stderr."""
    print(f"wrote {len(result.predictions)} predictions to {out} in {seconds:.1f} s; skipped {len(result.skipped)}")
    if result.skipped:
        print(f"skipped {len(result.skipped)} question(s), listed in {skipped_path(out)}:", file=sys.stderr)
        for s in result.skipped[:SHOWN_SKIPPED]:
            print(f"  {s.source} (key {s.key}): {s.reason}: {s.detail}", file=sys.stderr)
        if len(result.skipped) > SHOWN_SKIPPED:
            print(f"  ... and {len(result.skipped) - SHOWN_SKIPPED} more", file=sys.stderr)


def _run(job: PredictJob, resume: bool, overwrite: bool, num_processes: int) -> PredictionResult | None:
    keys = check_inputs(job, overwrite)
    partial = PartialRun(job.out)
    identity = job.identity()
    partial.check(identity, resume, overwrite)
    todo = still_to_answer(partial, keys) if resume else list(keys)  # read-only: every rank checks

    def prepare() -> list[int]:
        partial.prepare(identity, resume)
        return todo

    distributed = int(os.environ.get("WORLD_SIZE", "1")) > 1
    if distributed or num_processes > 1:
        recorded = recorded_modality_names(job.model_dir)  # no model in this process: read what it records
        if recorded:
            check_media_kinds(job, recorded)
    if distributed:
        return run_distributed(job, prepare)  # None on ranks other than 0
    if num_processes > 1:
        run_spawned(job, prepare(), num_processes)
    else:
        session = job.load_session()  # before the partial folder exists: a checkpoint error leaves nothing behind
        check_media_kinds(job, sorted(session.modalities))
        job.run(prepare(), session=session)
    return partial.finish()
