"""``lvlm diagnose``: how aligned a model's video and image towers are, before and after the projector.

For every video in the shards (up to ``--items``), its video-tower tokens against the image tower on its
middle frame, each pooled to one vector: retrieval top-1 both ways over the batch, linear CKA (with its
row-shuffled floor), and the norm of the projected tokens of every modality against the LLM's input
embeddings (:mod:`lvlm.training.alignment_callback`). Writes ``alignment.json`` and ``alignment.png`` to
``--out``. A modality with no image counterpart (a plugin's, say) gets its norms and a note saying so.
"""

from __future__ import annotations

import glob
import json
from dataclasses import dataclass
from pathlib import Path

from lvlm.apps import command
from lvlm.core.errors import UserError


@dataclass
class Diagnose:
    """How aligned a model's video and image towers are, before and after the projector.

    Attributes:
        model: a checkpoint directory (lvlm layout, with its tokenizer).
        shards: WebDataset shards (files or glob patterns).
        items: items per modality (retrieval chance is 1/items).
        num_frames: frames per video (default: the model's).
        out: output folder for alignment.json/png.
    """

    model: str
    shards: list[str]
    items: int = 64
    num_frames: int | None = None
    out: str = "diagnostics"

    def run(self) -> int:
        """Measure, write alignment.json and alignment.png, print a summary; returns 0."""
        return diagnose(self)


def shard_paths(patterns: list[str]) -> list[Path]:
    """Files named or matched by ``patterns``, in order; a pattern matching nothing is a :class:`UserError`."""
    paths: list[Path] = []
    for pattern in patterns:
        matched = sorted(glob.glob(pattern)) if glob.has_magic(pattern) else [pattern]
        if not matched or not all(Path(p).is_file() for p in matched):
            raise UserError(f"--shards: {pattern!r} matches no file")
        paths += [Path(p) for p in matched]
    return paths


def main(argv: list[str] | None = None) -> int:
    """Run ``lvlm diagnose``; returns the exit status."""
    return command.run(Diagnose, argv, "lvlm diagnose")


def diagnose(args: Diagnose) -> int:
    """Load the model, read the shards' media, measure and report."""
    if args.items < 2:
        raise UserError("--items must be >= 2 (retrieval is over a batch)")
    shards = shard_paths(args.shards)
    from lvlm.apps.diagnose_plot import plot_report
    from lvlm.inference.session import load_session
    from lvlm.training.alignment_callback import measure_alignment, read_media

    try:
        session = load_session(args.model, num_frames=args.num_frames)
    except FileNotFoundError as error:
        raise UserError(str(error)) from error
    items = read_media(shards, session.modalities, args.items)
    report = measure_alignment(session.model, session.modalities, items, session.num_frames)
    report["model"], report["shards"] = str(args.model), [str(s) for s in shards]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "alignment.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    plot_report(report, out / "alignment.png", title=f"{args.model}: before (grey) / after (blue) the projector")
    print(summary(report))
    print(f"-> {out / 'alignment.json'}, {out / 'alignment.png'}")
    return 0


def summary(report: dict) -> str:
    """A few readable lines of a report."""
    lines = []
    for name, pair in report["pairs"].items():
        for where in ("before_projector", "after_projector"):
            s = pair[where]
            lines.append(
                f"{name} vs image ({where.replace('_', ' ')}, n={pair['n']}): retrieval {s['retrieval_a_to_b']:.3f} / "
                f"{s['retrieval_b_to_a']:.3f} (chance {s['retrieval_chance']:.3f}), CKA {s['cka']:.3f} "
                f"(shuffled {s['cka_shuffled']:.3f})"
            )
    lines += [f"norm {name}: mean {n['mean']:.3f}, p99 {n['p99']:.3f}" for name, n in report["norms"].items()]
    lines += [f"{name}: {why}" for name, why in report["not_applicable"].items()]
    return "\n".join(lines)
