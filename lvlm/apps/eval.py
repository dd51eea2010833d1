"""``lvlm eval``: score a prediction file with one protocol and write JSON, Markdown and TensorBoard results.

Thin on purpose: it parses arguments and calls :func:`lvlm.eval.evaluate_predictions`. With ``--model DIR``
it first generates the predictions through ``lvlm predict`` (progress, ``--num-processes``, and ``--resume`` after
an interrupted run) into ``OUT/predictions.jsonl``.

Outputs (``OUT/<protocol>.json``, ``.md``, ``tensorboard/<protocol>/``) are checked before any work: one that
is, contains or lies inside an input is refused, an existing one needs ``--overwrite`` and is then replaced
whole. Exit status: 0 scored (bad prediction records skipped and listed in the JSON), 2 refused (bad
arguments or an unusable input file), 3 some items could not be judged and ``--allow-partial`` was not given
(the JSON lists them and gives no metric).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from lvlm.apps import predict
from lvlm.core.errors import UserError
from lvlm.core.outputs import check_output
from lvlm.eval.evaluate import evaluate_predictions
from lvlm.eval.judges import JudgeConfigError, make_judge
from lvlm.eval.results import EvalResult, result_paths, write_all

SHOWN_SKIPPED = 20


def _common(parser: argparse.ArgumentParser) -> None:
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--predictions", type=Path, help="JSONL written by `lvlm predict`")
    source.add_argument("--model", type=Path, help="a checkpoint directory: generate the predictions first")
    parser.add_argument("--out", required=True, type=Path, help="folder for <protocol>.json, .md and tensorboard/")
    parser.add_argument("--no-tensorboard", action="store_true", help="skip the TensorBoard event file")
    parser.add_argument("--overwrite", action="store_true", help="replace existing results of this protocol")
    parser.add_argument("--encoding", default="auto", help="of the prediction file (auto: UTF-8, else Latin-1)")
    g = parser.add_argument_group("with --model")
    g.add_argument("--questions-json", type=Path, help="questions as `lvlm predict --questions` reads them")
    g.add_argument("--media-root", type=Path, help="folder relative media paths start from")
    g.add_argument("--batch-size", type=int, default=8)
    g.add_argument("--max-new-tokens", type=int, default=128)
    g.add_argument("--num-processes", type=int, default=1, help="spawn N CPU worker processes for the predictions")
    g.add_argument(
        "--resume", action="store_true", help="continue interrupted predictions (OUT/predictions.jsonl.partial)"
    )


def _video_qa_parser(sub: Any) -> None:
    p = sub.add_parser("video-qa", help="open-ended video QA scored by a judge (MSVD/MSRVTT/TGIF/ActivityNet-QA)")
    _common(p)
    p.add_argument("--questions", type=Path, help="test_q.json (with --answers: references come from the files)")
    p.add_argument("--answers", type=Path, help="test_a.json, paired with test_q.json by question_id")
    p.add_argument("--allow-missing", action="store_true", help="score even if some questions lack a prediction")
    p.add_argument("--judge", choices=["exact", "openai"], default="exact")
    p.add_argument("--exact-equal", action="store_true", help="exact judge: whole answer only, no containment")
    p.add_argument(
        "--allow-partial", action="store_true", help="when the judge fails on some items, score the judged ones"
    )
    g = p.add_argument_group("openai judge")
    g.add_argument("--base-url", help="OpenAI-compatible API root, e.g. http://127.0.0.1:8000/v1")
    g.add_argument("--judge-model", help="judge model name, e.g. a pinned local model")
    g.add_argument("--api-key-env", default="OPENAI_API_KEY", help="NAME of the env variable holding the key")
    g.add_argument("--temperature", type=float, default=0.0)
    g.add_argument("--seed", type=int, help="sent to the server when given")
    g.add_argument("--cache", type=Path, help="judgment cache folder (default: OUT/judge-cache)")
    g.add_argument("--workers", type=int, default=4, help="concurrent judge requests")
    g.add_argument(
        "--judge-timeout", type=float, default=60.0, metavar="SECONDS", help="per judge request (default: 60)"
    )
    g.add_argument(
        "--judge-deadline",
        type=float,
        metavar="SECONDS",
        help="for the whole judge stage: items not judged by then are counted as unjudged (default: none)",
    )
    g.add_argument("--max-retries", type=int, default=6, help="retries after 429/5xx/connection errors")
    g.add_argument("--base-delay", type=float, default=1.0, help="first backoff delay in seconds")
    g.add_argument("--max-malformed", type=int, default=3, help="re-asks after a malformed reply")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lvlm eval", description="Score a prediction file with one protocol; write JSON, Markdown, TensorBoard."
    )
    sub = parser.add_subparsers(dest="protocol", required=True, metavar="PROTOCOL")
    _video_qa_parser(sub)
    p = sub.add_parser("pope", help="POPE adversarial/popular/random with LLaVA's yes/no parser")
    _common(p)
    p.add_argument("--questions-dir", required=True, type=Path, help="folder with coco_pope_{category}.json")
    p.add_argument("--allow-missing", action="store_true")
    p = sub.add_parser("vqa", help="VQAv2 soft accuracy against several human answers per question")
    _common(p)
    p.add_argument("--annotations", required=True, type=Path, help="JSON list (or VQAv2 'annotations') of answers")
    p.add_argument("--allow-missing", action="store_true")
    p = sub.add_parser("synthetic", help="the quickstart world: accuracy per question type x modality vs chance")
    _common(p)
    return parser


def _judge(args: argparse.Namespace, parser: argparse.ArgumentParser) -> Any:
    if args.judge == "exact":
        return make_judge("exact", contains=not args.exact_equal)
    if not args.base_url or not args.judge_model:
        parser.error("--judge openai needs --base-url and --judge-model")
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


def _options(args: argparse.Namespace, parser: argparse.ArgumentParser) -> dict[str, Any]:
    if args.protocol == "video-qa":
        judge = _judge(args, parser)
        return {
            "judge": judge,
            "questions": args.questions,
            "answers": args.answers,
            "allow_missing": args.allow_missing,
            "allow_partial": args.allow_partial,
            "encoding": args.encoding,
        }
    if args.protocol == "pope":
        return {"questions_dir": args.questions_dir, "allow_missing": args.allow_missing, "encoding": args.encoding}
    if args.protocol == "vqa":
        return {"annotations": args.annotations, "allow_missing": args.allow_missing, "encoding": args.encoding}
    return {"encoding": args.encoding}


def _check_outputs(args: argparse.Namespace) -> None:
    """Refuse, before any work, results that would overwrite an input or (without --overwrite) earlier results."""
    names = ("predictions", "model", "questions_json", "questions", "answers", "questions_dir", "annotations")
    inputs = [getattr(args, name, None) for name in names]
    outputs = list(result_paths(args.out, args.protocol, not args.no_tensorboard).values())
    if args.model is not None:
        outputs += [args.out / "predictions.jsonl", args.out / "predictions.skipped.jsonl"]
    for path in outputs:
        check_output(path, inputs, overwrite=args.overwrite, what="--out")


def _generate_predictions(args: argparse.Namespace, parser: argparse.ArgumentParser) -> Path:
    """Answer every question with the model (greedy) through ``lvlm predict``: OUT/predictions.jsonl, skipped ones
    beside it, progress on stderr, resumable after a kill with ``--resume``."""
    questions = args.questions_json or (args.questions if args.protocol == "video-qa" else None)
    if questions is None:
        parser.error("--model needs --questions-json (or, for video-qa, --questions test_q.json)")
    path = args.out / "predictions.jsonl"
    argv = ["--model", str(args.model), "--questions", str(questions), "--out", str(path)]
    argv += ["--batch-size", str(args.batch_size), "--max-new-tokens", str(args.max_new_tokens)]
    argv += ["--num-processes", str(args.num_processes)]
    if args.media_root is not None:
        argv += ["--media-root", str(args.media_root)]
    argv += ["--resume"] * args.resume + ["--overwrite"] * args.overwrite
    predict.main(argv)
    return path


def main(argv: list[str] | None = None) -> int:
    """Run ``lvlm eval PROTOCOL ...``; returns the exit status (0 scored, 3 unjudged items; UserError: 2)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    _check_outputs(args)
    try:
        predictions = args.predictions if args.model is None else _generate_predictions(args, parser)
        result = evaluate_predictions(args.protocol, predictions, **_options(args, parser))
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


if __name__ == "__main__":
    sys.exit(main())
