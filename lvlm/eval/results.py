"""The outcome of one evaluation, and its writers: JSON (full detail), TensorBoard scalars, Markdown."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from lvlm.core.outputs import staged_output
from lvlm.eval.table import render_table


@dataclass
class EvalResult:
    """Scores of one protocol on one prediction set.

    Attributes:
        protocol: protocol name (``video-qa``, ``pope``, ``vqa``, ``synthetic``).
        metrics: flat ``name -> value`` (e.g. ``adversarial/f1``); each becomes the TensorBoard scalar
            ``eval/<protocol>/<name>``.
        headers: column names of the summary table.
        rows: summary table rows.
        config: how the numbers were made (input files, judge, options): everything needed to redo them.
        counts: item counts (scored, missing, judge failures, cache hits, skipped records, ...).
        items: per-question outcomes, for inspection.
        skipped: prediction records that were not scored, each ``{"source", "key", "reason", "detail"}``.
        status: ``complete``; ``partial`` (some items could not be judged and the user accepted scoring the
            rest); ``incomplete`` (some could not be judged: no metric is given, the command exits 3).
    """

    protocol: str
    metrics: dict[str, float]
    headers: list[str]
    rows: list[list[Any]]
    config: dict[str, Any] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    items: list[dict[str, Any]] = field(default_factory=list)
    skipped: list[dict[str, Any]] = field(default_factory=list)
    status: str = "complete"

    def table(self, fmt: str = "markdown") -> str:
        """The summary table as Markdown or plain text."""
        return render_table(self.headers, self.rows, fmt=fmt)

    def to_dict(self) -> dict[str, Any]:
        """Everything, JSON-serialisable."""
        return asdict(self)


def write_json(result: EvalResult, path: str | Path) -> Path:
    """Write the full result (status, metrics, table, config, counts, per-item outcomes, skipped records)."""
    path = Path(path)
    with staged_output(path, directory=False) as staged:
        staged.write_text(json.dumps(result.to_dict(), indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return path


def write_markdown(result: EvalResult, path: str | Path) -> Path:
    """Write a short Markdown report: the table, then the counts and the config that produced it."""
    path = Path(path)
    lines = [f"# {result.protocol}", ""]
    if result.status != "complete":
        lines += [f"Status: **{result.status}** (see `counts`: not every item was judged)", ""]
    lines += [result.table("markdown"), ""]
    if result.counts:
        lines += ["Counts: " + ", ".join(f"{k} {v}" for k, v in result.counts.items()), ""]
    lines += ["Config:", "", "```json", json.dumps(result.config, indent=2, ensure_ascii=False), "```", ""]
    with staged_output(path, directory=False) as staged:
        staged.write_text("\n".join(lines), encoding="utf-8")
    return path


def write_tensorboard(result: EvalResult, log_dir: str | Path, step: int = 0) -> Path:
    """Write one scalar per metric under ``eval/<protocol>/<name>`` into a TensorBoard event file."""
    from torch.utils.tensorboard import SummaryWriter  # imported here: tensorboard is slow to import

    log_dir = Path(log_dir)
    with staged_output(log_dir, directory=True) as staged:
        writer = SummaryWriter(log_dir=str(staged))
        try:
            for name, value in result.metrics.items():
                writer.add_scalar(f"eval/{result.protocol}/{name}", float(value), global_step=step)
        finally:
            writer.close()
    return log_dir


def result_paths(out_dir: str | Path, protocol: str, tensorboard: bool = True) -> dict[str, Path]:
    """Where :func:`write_all` writes: ``<protocol>.json``, ``<protocol>.md``, ``tensorboard/<protocol>/``."""
    out_dir = Path(out_dir)
    paths = {"json": out_dir / f"{protocol}.json", "markdown": out_dir / f"{protocol}.md"}
    if tensorboard:
        paths["tensorboard"] = out_dir / "tensorboard" / protocol
    return paths


def write_all(result: EvalResult, out_dir: str | Path, tensorboard: bool = True) -> dict[str, Path]:
    """Write the JSON, Markdown and (optionally, and only for a result with metrics) TensorBoard outputs.

    Each is built in a temporary sibling and moved into place (an earlier one is replaced whole); an
    ``incomplete`` result (unjudged items, no metric) gets no TensorBoard scalar.
    """
    paths = result_paths(out_dir, result.protocol, tensorboard and result.status != "incomplete")
    written = {"json": write_json(result, paths["json"]), "markdown": write_markdown(result, paths["markdown"])}
    if "tensorboard" in paths and result.metrics:
        written["tensorboard"] = write_tensorboard(result, paths["tensorboard"])
    return written
