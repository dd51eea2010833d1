"""``lvlm predict``: batched generation over a question file (JSON list or JSONL) or WebDataset shards → JSONL.

    lvlm predict --model CKPT --questions questions.json --media-root media/ --out predictions.jsonl
    lvlm predict --model CKPT --shards 'val-{000000..000003}.tar' --out predictions.jsonl --num-processes 2
    torchrun --nproc-per-node 4 -m lvlm predict --model CKPT --questions q.json --out p.jsonl

Each line is ``{"key", "question", "answer", "prediction", ...metadata}``, in input order. Skipped questions
(unusable records, missing or undecodable media, unreadable shard parts, ...) are listed with source, key and
reason in ``OUT.skipped.jsonl`` and summarised on stderr. Exit status: 0 the run finished (skipped questions
included), 2 refused before any work (bad arguments, an unusable input file, an output that would overwrite
an input or an earlier result); an interrupted run is continued with ``--resume``. Thin: the run itself is
:func:`lvlm.inference.predict_run.run_prediction`, which ``lvlm eval --model`` calls too.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from jsonargparse import ArgumentParser

from lvlm.apps import command
from lvlm.core.errors import UserError
from lvlm.inference.batch_generate import GenerationSettings
from lvlm.inference.predict_job import PredictJob
from lvlm.inference.predict_run import run_prediction


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
        job = job_from_args(self)
        run_prediction(job, resume=self.resume, overwrite=self.overwrite, num_processes=self.num_processes)
        return 0


def build_parser() -> ArgumentParser:
    """The parser of ``lvlm predict`` (jsonargparse, from :class:`Predict`)."""
    return command.build_parser(Predict, "lvlm predict")


def job_from_args(args: Predict) -> PredictJob:
    """The prediction job the flags describe."""
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


def main(argv: list[str] | None = None) -> int:
    """Run ``lvlm predict`` (also ``torchrun ... -m lvlm predict``); returns the exit status."""
    return command.run(Predict, argv, "lvlm predict")
