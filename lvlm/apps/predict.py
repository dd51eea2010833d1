"""``lvlm predict``: batched generation over a JSON list of questions or WebDataset shards → one JSONL file.

    lvlm predict --model CKPT --questions questions.json --media-root media/ --out predictions.jsonl
    lvlm predict --model CKPT --shards 'val-{000000..000003}.tar' --out predictions.jsonl --num-processes 2
    torchrun --nproc-per-node 4 -m lvlm.apps.predict --model CKPT --questions q.json --out p.jsonl

Each line is ``{"key", "question", "answer", "prediction", ...metadata}``, in input order. Skipped questions
(missing or undecodable media, ...) are listed with key and reason in ``OUT.skipped.jsonl`` and on stderr.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

from lvlm.apps.predict_parallel import PredictJob, run_distributed, run_spawned, skipped_path, write_outputs
from lvlm.inference.batch_generate import GenerationSettings
from lvlm.inference.predict import PredictionResult
from lvlm.inference.session import TemplateNotRecordedError

SHOWN_SKIPPED = 20


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="lvlm predict", description=__doc__.splitlines()[0])
    p.add_argument("--model", required=True, help="checkpoint directory (lvlm, transformers or original layout)")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--questions", help='JSON list: [{"id", "image"|"video", "question"|"conversations", "answer"}]')
    src.add_argument("--shards", nargs="+", help="WebDataset shards (paths or brace patterns), read in order")
    p.add_argument("--media-root", help="folder media paths are relative to (default: the JSON file's folder)")
    p.add_argument("--out", required=True, help="merged JSONL of predictions")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--max-new-tokens", type=int, default=128)
    p.add_argument("--temperature", type=float, default=0.0, help="0 = greedy (default); > 0 samples")
    p.add_argument("--top-p", type=float, default=1.0)
    p.add_argument("--seed", type=int, help="seed of the sampler (with --temperature > 0)")
    p.add_argument("--num-processes", type=int, default=1, help="spawn N CPU worker processes (not with torchrun)")
    p.add_argument("--template", help="override the checkpoint's chat template (vicuna_v1, llava_v1, plain)")
    p.add_argument("--num-frames", type=int, help="frames per video (default: the video tower's)")
    p.add_argument("--image-mode", choices=["pad", "crop"], default="pad", help="pad to square (default) or crop")
    p.add_argument("--dtype", help="model dtype, e.g. bfloat16 (default: as saved)")
    p.add_argument("--device", default="cpu", help="cpu or cuda (under torchrun: cuda:LOCAL_RANK)")
    return p


def job_from_args(args: argparse.Namespace) -> PredictJob:
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
    )


def report(result: PredictionResult, out: str, seconds: float) -> None:
    print(f"wrote {len(result.predictions)} predictions to {out} in {seconds:.1f} s")
    if result.skipped:
        print(f"skipped {len(result.skipped)} question(s), listed in {skipped_path(out)}:", file=sys.stderr)
        for s in result.skipped[:SHOWN_SKIPPED]:
            print(f"  {s.key} ({s.reason}): {s.detail}", file=sys.stderr)
        if len(result.skipped) > SHOWN_SKIPPED:
            print(f"  ... and {len(result.skipped) - SHOWN_SKIPPED} more", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    """Run ``lvlm predict``; returns the exit status (2 for unusable input)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.num_processes < 1:
        parser.error("--num-processes must be >= 1")
    start = time.perf_counter()
    try:
        job = job_from_args(args)
        if int(os.environ.get("WORLD_SIZE", "1")) > 1:
            if args.num_processes > 1:
                parser.error("--num-processes spawns workers itself; under torchrun leave it at 1")
            result = run_distributed(job)
            if result is None:  # not rank 0: rank 0 writes the merged file and the report
                return 0
        elif args.num_processes > 1:
            result = run_spawned(job, args.num_processes)
        else:
            result = job.run()
            write_outputs(job.out, result)
    except (TemplateNotRecordedError, FileNotFoundError, ValueError) as err:
        print(f"lvlm predict: error: {err}", file=sys.stderr)
        return 2
    report(result, args.out, time.perf_counter() - start)
    return 0


if __name__ == "__main__":
    sys.exit(main())
