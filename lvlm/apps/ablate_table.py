"""The ``lvlm ablate`` table: accuracy and alignment per cell, mean and spread over seeds, and comparisons.

A cell is a (tower arm, data arm) pair; its value for a metric is the mean over seeds with the sample
standard deviation. A comparison of two cells on a metric says whether the difference of means exceeds the
sum of their standard deviations (a deliberately plain rule for 2-3 seeds: no p-values from so few runs).
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from lvlm.eval.table import render_table

# Comparisons the grid was built for: (question, cell a, cell b), when both cells ran.
TOWER_PAIRS = (("unified", "separated"), ("unified", "random"), ("separated", "random"))
DATA_PAIRS = (("joint", "image_only"), ("joint", "video_only"), ("joint", "transfer"))
SHOWN = ("all/all", "shape/video", "shape/image", "color/image", "direction/video", "retrieval_after")


def collect_results(out: Path, cells: Sequence[tuple[str, str]], seeds: Sequence[int]) -> list[dict[str, Any]]:
    """Every finished run's ``result.json`` of the given cells and seeds."""
    found = []
    for tower, data in cells:
        for seed in seeds:
            path = out / "runs" / f"{tower}-{data}" / f"seed{seed}" / "result.json"
            if path.is_file():
                found.append(json.loads(path.read_text(encoding="utf-8")))
    return found


def run_metrics(result: dict[str, Any]) -> dict[str, float]:
    """One run's numbers: ``<type>/<modality>`` accuracies and the video-vs-frame alignment measures."""
    metrics = {f"{r['question_type']}/{r['modality']}": r["accuracy"] for r in result["rows"]}
    report = result["alignment"]
    pair = report["pairs"].get("video")
    if pair is not None:
        for where, short in (("before_projector", "before"), ("after_projector", "after")):
            scores = pair[where]
            metrics[f"retrieval_{short}"] = (scores["retrieval_a_to_b"] + scores["retrieval_b_to_a"]) / 2
            metrics[f"cka_{short}"] = scores["cka"]
        metrics["retrieval_chance"] = pair["after_projector"]["retrieval_chance"]
    norms = report["norms"]
    if "video" in norms:
        metrics["norm_ratio_video"] = norms["video"]["mean"] / norms["llm_embeddings"]["mean"]
    return metrics


def summarize(results: Sequence[dict[str, Any]]) -> dict[str, dict[str, dict[str, Any]]]:
    """``{cell: {metric: {"mean", "std", "values"}}}`` over the seeds that ran."""
    by_cell: dict[str, list[dict[str, float]]] = {}
    for result in sorted(results, key=lambda r: r["seed"]):
        by_cell.setdefault("-".join(result["cell"]), []).append(run_metrics(result))
    summary = {}
    for cell, runs in by_cell.items():
        names = sorted({name for run in runs for name in run})
        summary[cell] = {}
        for name in names:
            values = [run[name] for run in runs if name in run]
            std = statistics.stdev(values) if len(values) > 1 else 0.0
            summary[cell][name] = {"mean": statistics.fmean(values), "std": std, "values": values}
    return summary


def comparisons(summary: dict[str, dict[str, dict[str, Any]]]) -> list[dict[str, Any]]:
    """Every planned comparison between cells that ran, on every metric both have."""
    pairs = [
        (f"{a}-{d}", f"{b}-{d}") for a, b in TOWER_PAIRS for d in ("joint", "transfer", "image_only", "video_only")
    ]
    pairs += [(f"unified-{a}", f"unified-{b}") for a, b in DATA_PAIRS]
    found = []
    for a, b in pairs:
        if a not in summary or b not in summary:
            continue
        for metric in sorted(set(summary[a]) & set(summary[b]) - {"retrieval_chance"}):
            x, y = summary[a][metric], summary[b][metric]
            difference, spread = x["mean"] - y["mean"], x["std"] + y["std"]
            enough = len(x["values"]) > 1 and len(y["values"]) > 1
            found.append(
                {
                    "a": a,
                    "b": b,
                    "metric": metric,
                    "difference": difference,
                    "spread": spread,
                    "exceeds_spread": bool(enough and abs(difference) > spread),
                }
            )
    return found


def render_markdown(summary: dict[str, dict[str, dict[str, Any]]], compared: list[dict[str, Any]]) -> str:
    """Accuracy per metric x cell, the alignment per cell, and the headline comparisons, as Markdown."""
    cells = list(summary)
    accuracy = sorted({m for cell in summary.values() for m in cell if "/" in m}, key=lambda m: (m == "all/all", m))

    def value(cell: str, metric: str) -> str:
        entry = summary[cell].get(metric)
        if entry is None:
            return ""
        return f"{entry['mean']:.3f}" + (f" ± {entry['std']:.3f}" if len(entry["values"]) > 1 else " (1 seed)")

    parts = ["Accuracy (mean ± std over seeds; question type / modality):", ""]
    parts.append(
        render_table(["metric", *cells], [[m, *(value(c, m) for c in cells)] for m in accuracy], fmt="markdown")
    )
    alignment = [
        "retrieval_before",
        "retrieval_after",
        "cka_before",
        "cka_after",
        "norm_ratio_video",
        "retrieval_chance",
    ]
    parts += ["", "Alignment of each video with its middle frame (retrieval: top-1, mean of both directions):", ""]
    parts.append(
        render_table(["cell", *alignment], [[c, *(value(c, m) for m in alignment)] for c in cells], fmt="markdown")
    )
    shown = [c for c in compared if c["metric"] in SHOWN]
    rows = [
        [
            f"{c['a']} vs {c['b']}",
            c["metric"],
            f"{c['difference']:+.3f}",
            f"{c['spread']:.3f}",
            "yes" if c["exceeds_spread"] else "no",
        ]
        for c in shown
    ]
    parts += ["", "Differences (a - b) against the spread (sum of both std):", ""]
    parts.append(render_table(["cells", "metric", "difference", "spread", "exceeds"], rows, fmt="markdown"))
    return "\n".join(parts) + "\n"


def write_table(results: Sequence[dict[str, Any]], out: Path) -> dict[str, Any]:
    """Write ``out/ablation.json`` and ``out/ablation.md``; returns the JSON."""
    summary = summarize(results)
    compared = comparisons(summary)
    seconds = sum(r.get("seconds", 0.0) for r in results)
    table = {"cells": summary, "comparisons": compared, "runs": len(results), "run_seconds": seconds}
    (out / "ablation.json").write_text(json.dumps(table, indent=2) + "\n", encoding="utf-8")
    (out / "ablation.md").write_text(render_markdown(summary, compared), encoding="utf-8")
    return table
