"""``lvlm eval``: score a prediction file with one protocol and write JSON, Markdown and TensorBoard results.

Thin on purpose: it parses arguments and calls :func:`lvlm.eval.evaluate_predictions`. With ``--model DIR``
it first generates the predictions with the library function ``lvlm predict`` calls
(:func:`lvlm.inference.predict_run.run_prediction`: progress, ``--num-processes``, and ``--resume`` after
an interrupted run) into ``OUT/predictions.jsonl``.

Outputs (``OUT/<protocol>.json``, ``.md``, ``tensorboard/<protocol>/``) are checked before any work: one that
is, contains or lies inside an input is refused, an existing one needs ``--overwrite`` and is then replaced
whole. Exit status: 0 scored (bad prediction records skipped and listed in the JSON), 2 refused (bad
arguments or an unusable input file), 3 some items could not be judged and ``--allow-partial`` was not given
(the JSON lists them and gives no metric).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal

from lvlm.apps import command
from lvlm.core.errors import UserError
from lvlm.core.outputs import check_output
from lvlm.eval.evaluate import evaluate_predictions
from lvlm.eval.judges import JudgeConfigError, make_judge
from lvlm.eval.results import EvalResult, result_paths, write_all
from lvlm.inference.batch_generate import GenerationSettings
from lvlm.inference.predict_job import PredictJob
from lvlm.inference.predict_run import run_prediction

SHOWN_SKIPPED = 20


@dataclass(kw_only=True)
class Scoring:
    """What every protocol takes: the predictions (or a model to make them), the output folder, and overwrite.

    Attributes:
        out: folder for <protocol>.json, .md and tensorboard/.
        predictions: JSONL written by `lvlm predict`; or give --model.
        model: a checkpoint directory: generate the predictions first (into OUT/predictions.jsonl).
        no_tensorboard: skip the TensorBoard event file.
        overwrite: replace existing results of this protocol.
        encoding: of the prediction file (auto: UTF-8, else Latin-1).
        questions_json: with --model: questions as `lvlm predict --questions` reads them.
        media_root: with --model: folder relative media paths start from.
        batch_size: with --model: questions per generate call.
        max_new_tokens: with --model: longest answer in tokens.
        num_processes: with --model: spawn N CPU worker processes for the predictions.
        resume: with --model: continue interrupted predictions (OUT/predictions.jsonl.partial).
    """

    protocol: ClassVar[str]
    out: Path
    predictions: Path | None = None
    model: Path | None = None
    no_tensorboard: bool = False
    overwrite: bool = False
    encoding: str = "auto"
    questions_json: Path | None = None
    media_root: Path | None = None
    batch_size: int = 8
    max_new_tokens: int = 128
    num_processes: int = 1
    resume: bool = False

    def options(self) -> dict[str, Any]:
        """The keyword arguments of :func:`evaluate_predictions` for this protocol."""
        return {"encoding": self.encoding}

    def questions_for_model(self) -> Path | None:
        """The questions ``--model`` answers."""
        return self.questions_json

    def run(self) -> int:
        """Score (after generating, with ``--model``); returns 0, or 3 when items could not be judged."""
        return score(self)


@dataclass(kw_only=True)
class VideoQA(Scoring):
    """Open-ended video QA scored by a judge (MSVD/MSRVTT/TGIF/ActivityNet-QA).

    Attributes:
        questions: test_q.json (with --answers: references come from the files).
        answers: test_a.json, paired with test_q.json by question_id.
        allow_missing: score even if some questions lack a prediction.
        judge: exact match, or an OpenAI-compatible judge model.
        exact_equal: exact judge: whole answer only, no containment.
        allow_partial: when the judge fails on some items, score the judged ones.
        base_url: openai judge: API root, e.g. http://127.0.0.1:8000/v1.
        judge_model: openai judge: model name, e.g. a pinned local model.
        api_key_env: openai judge: NAME of the env variable holding the key.
        temperature: openai judge: sampling temperature.
        seed: openai judge: sent to the server when given.
        cache: openai judge: judgment cache folder (default: OUT/judge-cache).
        workers: openai judge: concurrent judge requests.
        judge_timeout: openai judge: seconds per judge request.
        judge_deadline: openai judge: seconds for the whole judge stage; items not judged by then are counted
            as unjudged (default: none).
        max_retries: openai judge: retries after 429/5xx/connection errors.
        base_delay: openai judge: first backoff delay in seconds.
        max_malformed: openai judge: re-asks after a malformed reply.
    """

    protocol: ClassVar[str] = "video-qa"
    questions: Path | None = None
    answers: Path | None = None
    allow_missing: bool = False
    judge: Literal["exact", "openai"] = "exact"
    exact_equal: bool = False
    allow_partial: bool = False
    base_url: str | None = None
    judge_model: str | None = None
    api_key_env: str = "OPENAI_API_KEY"
    temperature: float = 0.0
    seed: int | None = None
    cache: Path | None = None
    workers: int = 4
    judge_timeout: float = 60.0
    judge_deadline: float | None = None
    max_retries: int = 6
    base_delay: float = 1.0
    max_malformed: int = 3

    def options(self) -> dict[str, Any]:
        return super().options() | {
            "judge": _judge(self),
            "questions": self.questions,
            "answers": self.answers,
            "allow_missing": self.allow_missing,
            "allow_partial": self.allow_partial,
        }

    def questions_for_model(self) -> Path | None:
        return self.questions_json or self.questions


@dataclass(kw_only=True)
class Pope(Scoring):
    """POPE adversarial/popular/random with LLaVA's yes/no parser.

    Attributes:
        questions_dir: folder with coco_pope_{category}.json.
        allow_missing: score even if some questions lack a prediction.
    """

    protocol: ClassVar[str] = "pope"
    questions_dir: Path
    allow_missing: bool = False

    def options(self) -> dict[str, Any]:
        return super().options() | {"questions_dir": self.questions_dir, "allow_missing": self.allow_missing}


@dataclass(kw_only=True)
class Vqa(Scoring):
    """VQAv2 soft accuracy against several human answers per question.

    Attributes:
        annotations: JSON list (or VQAv2 'annotations') of answers.
        allow_missing: score even if some questions lack a prediction.
    """

    protocol: ClassVar[str] = "vqa"
    annotations: Path
    allow_missing: bool = False

    def options(self) -> dict[str, Any]:
        return super().options() | {"annotations": self.annotations, "allow_missing": self.allow_missing}


@dataclass(kw_only=True)
class Synthetic(Scoring):
    """The quickstart world: accuracy per question type x modality vs chance."""

    protocol: ClassVar[str] = "synthetic"


PROTOCOLS: dict[str, type[Scoring]] = {cls.protocol: cls for cls in (VideoQA, Pope, Vqa, Synthetic)}


def main(argv: list[str] | None = None) -> int:
    """Run ``lvlm eval PROTOCOL ...``; returns the exit status (0 scored, 3 unjudged items; UserError: 2)."""
    return command.run_subcommand(PROTOCOLS, argv, "lvlm eval", dest="protocol")


def _judge(args: VideoQA) -> Any:
    if args.judge == "exact":
        return make_judge("exact", contains=not args.exact_equal)
    if not args.base_url or not args.judge_model:
        raise UserError("--judge openai needs --base-url and --judge-model")
    return make_judge(
        "openai",
        cache_dir=args.cache or args.out / "judge-cache",
        base_url=args.base_url,
        model=args.judge_model,
        api_key_env=args.api_key_env,
        temperature=args.temperature,
        seed=args.seed,
        workers=args.workers,
        max_retries=args.max_retries,
        base_delay=args.base_delay,
        max_malformed=args.max_malformed,
        timeout=args.judge_timeout,
        deadline=args.judge_deadline,
    )


def _check_outputs(args: Scoring) -> None:
    """Refuse, before any work, results that would overwrite an input or (without --overwrite) earlier results."""
    names = ("predictions", "model", "questions_json", "questions", "answers", "questions_dir", "annotations")
    inputs = [getattr(args, name, None) for name in names]
    outputs = list(result_paths(args.out, args.protocol, not args.no_tensorboard).values())
    if args.model is not None:
        outputs += [args.out / "predictions.jsonl", args.out / "predictions.skipped.jsonl"]
    for path in outputs:
        check_output(path, inputs, overwrite=args.overwrite, what="--out")


def _generate_predictions(args: Scoring) -> Path:
    """Answer every question with the model (greedy) as ``lvlm predict`` does (the same library function):
    OUT/predictions.jsonl, skipped ones beside it, progress on stderr, resumable after a kill with ``--resume``."""
    questions = args.questions_for_model()
    if questions is None:
        raise UserError("--model needs --questions-json (or, for video-qa, --questions test_q.json)")
    path = args.out / "predictions.jsonl"
    job = PredictJob(
        model_dir=str(args.model),
        out=str(path),
        questions_json=str(questions),
        media_root=None if args.media_root is None else str(args.media_root),
        settings=GenerationSettings(max_new_tokens=args.max_new_tokens),
        batch_size=args.batch_size,
    )
    run_prediction(job, resume=args.resume, overwrite=args.overwrite, num_processes=args.num_processes)
    return path


def score(args: Scoring) -> int:
    """Score one protocol and write its results; returns 0, or 3 when some items could not be judged."""
    if (args.predictions is None) == (args.model is None):
        raise UserError("give one of --predictions and --model")
    _check_outputs(args)
    try:
        predictions = args.predictions if args.model is None else _generate_predictions(args)
        result = evaluate_predictions(args.protocol, predictions, **args.options())
    except JudgeConfigError as err:
        raise UserError(str(err)) from None
    written = write_all(result, args.out, tensorboard=not args.no_tensorboard)
    print(result.table("plain"))
    if result.counts:
        print("counts: " + ", ".join(f"{k} {v}" for k, v in result.counts.items()))
    _report_skipped(result)
    print("wrote " + ", ".join(str(p) for p in written.values()))
    late = result.counts.get("past_deadline")
    if late:
        print(f"lvlm eval {args.protocol}: {late} item(s) were not judged: the --judge-deadline of "
              f"{args.judge_deadline:g} s had passed", file=sys.stderr)  # fmt: skip
    if result.status == "incomplete":
        print(
            f"lvlm eval {args.protocol}: {result.counts.get('failed')} of {result.counts.get('questions')} items could "
            "not be judged (see 'items' in the JSON): no metric is given. Fix the judge and run again (judged items "
            "are cached), or pass --allow-partial to score the judged ones.",
            file=sys.stderr,
        )
        return 3
    return 0


def _report_skipped(result: EvalResult) -> None:
    if not result.skipped:
        return
    print(f"skipped {len(result.skipped)} prediction record(s) (listed under 'skipped' in the JSON):", file=sys.stderr)
    for entry in result.skipped[:SHOWN_SKIPPED]:
        print(f"  {entry['source']} (key {entry['key']}): {entry['reason']}: {entry['detail']}", file=sys.stderr)
    if len(result.skipped) > SHOWN_SKIPPED:
        print(f"  ... and {len(result.skipped) - SHOWN_SKIPPED} more", file=sys.stderr)
