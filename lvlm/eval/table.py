"""Plain-text and Markdown rendering of small result tables."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def format_cell(value: Any, digits: int = 4) -> str:
    """Floats with ``digits`` decimals, ``None`` as an empty cell, anything else with ``str``."""
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def render_table(headers: Sequence[str], rows: Sequence[Sequence[Any]], fmt: str = "markdown", digits: int = 4) -> str:
    """Render ``rows`` under ``headers`` as a Markdown (``fmt="markdown"``) or aligned plain-text table."""
    cells = [[format_cell(v, digits) for v in row] for row in rows]
    if fmt == "markdown":
        lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
        lines += ["| " + " | ".join(row) + " |" for row in cells]
        return "\n".join(lines)
    if fmt != "plain":
        raise ValueError(f"unknown table format {fmt!r}; use 'markdown' or 'plain'")
    widths = [max([len(h)] + [len(row[i]) for row in cells]) for i, h in enumerate(headers)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths)).rstrip()]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in cells]
    return "\n".join(lines)
