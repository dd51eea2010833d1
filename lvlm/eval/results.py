"""The outcome of one evaluation, and its writers: JSON (full detail), TensorBoard scalars, Markdown."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

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
        counts: item counts (scored, missing, judge failures, cache hits, ...).
        items: per-question outcomes, for inspection.
    """

    protocol: str
    metrics: dict[str, float]
    headers: list[str]
    rows: list[list[Any]]
    config: dict[str, Any] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    items: list[dict[str, Any]] = field(default_factory=list)

    def table(self, fmt: str = "markdown") -> str:
        """The summary table as Markdown or plain text."""
        return render_table(self.headers, self.rows, fmt=fmt)

    def to_dict(self) -> dict[str, Any]:
        """Everything, JSON-serialisable."""
        return asdict(self)


def write_json(result: EvalResult, path: str | Path) -> Path:
    """Write the full result (metrics, table, config, counts, per-item outcomes) as indented JSON."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result.to_dict(), indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return path


def write_markdown(result: EvalResult, path: str | Path) -> Path:
    """Write a short Markdown report: the table, then the counts and the config that produced it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [f"# {result.protocol}", "", result.table("markdown"), ""]
    if result.counts:
        lines += ["Counts: " + ", ".join(f"{k} {v}" for k, v in result.counts.items()), ""]
    lines += ["Config:", "", "```json", json.dumps(result.config, indent=2, ensure_ascii=False), "```", ""]
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


def write_tensorboard(result: EvalResult, log_dir: str | Path, step: int = 0) -> Path:
    """Write one scalar per metric under ``eval/<protocol>/<name>`` into a TensorBoard event file."""
    from torch.utils.tensorboard import SummaryWriter  # imported here: tensorboard is slow to import

    log_dir = Path(log_dir)
    writer = SummaryWriter(log_dir=str(log_dir))
    try:
        for name, value in result.metrics.items():
            writer.add_scalar(f"eval/{result.protocol}/{name}", float(value), global_step=step)
    finally:
        writer.close()
    return log_dir


def write_all(result: EvalResult, out_dir: str | Path, tensorboard: bool = True) -> dict[str, Path]:
    """Write ``<protocol>.json``, ``<protocol>.md`` and (optionally) TensorBoard events into ``out_dir``."""
    out_dir = Path(out_dir)
    written = {
        "json": write_json(result, out_dir / f"{result.protocol}.json"),
        "markdown": write_markdown(result, out_dir / f"{result.protocol}.md"),
    }
    if tensorboard:
        written["tensorboard"] = write_tensorboard(result, out_dir / "tensorboard")
    return written
