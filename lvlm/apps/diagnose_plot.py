"""A PNG of an alignment report, drawn with PIL (matplotlib is not a dependency of lvlm).

Left: per modality paired with the image tower, retrieval top-1 (both directions) and linear CKA, before
(grey) and after (blue) the projector, with retrieval chance as a red tick. Right: mean norm of projected
tokens per modality against the LLM's input embedding rows.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw

BEFORE, AFTER, CHANCE, INK, NORM = (150, 150, 150), (50, 110, 200), (210, 40, 40), (20, 20, 20), (90, 160, 90)
MEASURES = (("retrieval_a_to_b", "R@1 v->i"), ("retrieval_b_to_a", "R@1 i->v"), ("cka", "CKA"))


def plot_report(report: dict[str, Any], path: str | Path, title: str = "") -> Path:
    """Draw ``report`` (from :func:`~lvlm.training.alignment_callback.measure_alignment`) to ``path``."""
    pairs, norms = report["pairs"], report["norms"]
    width = 80 + 110 * max(1, len(MEASURES) * len(pairs)) + 60 + 70 * len(norms)
    image = Image.new("RGB", (max(width, 480), 320), "white")
    draw = ImageDraw.Draw(image)
    draw.text((10, 6), title or "alignment before (grey) / after (blue) the projector", fill=INK)
    top, bottom, x = 56, 260, 50
    draw.line((x - 5, bottom, x - 5, top), fill=INK)
    for tick in (0.0, 0.5, 1.0):
        y = bottom - tick * (bottom - top)
        draw.text((10, y - 6), f"{tick:.1f}", fill=INK)
    for name, pair in pairs.items():
        for key, label in MEASURES:
            for offset, (where, colour) in enumerate((("before_projector", BEFORE), ("after_projector", AFTER))):
                value = max(0.0, min(1.0, pair[where][key]))
                left = x + offset * 40
                draw.rectangle((left, bottom - value * (bottom - top), left + 34, bottom), fill=colour)
            if key.startswith("retrieval"):
                y = bottom - pair["after_projector"]["retrieval_chance"] * (bottom - top)
                draw.line((x - 4, y, x + 78, y), fill=CHANCE, width=2)
            draw.text((x, bottom + 6), label, fill=INK)
            draw.text((x, bottom + 20), f"{name} n={pair['n']}", fill=INK)
            x += 110
    if not pairs:
        draw.text((x, (top + bottom) // 2), "no video/image pair in this model or data", fill=INK)
        x += 300
    x += 40
    biggest = max((n["mean"] for n in norms.values()), default=1.0) or 1.0
    draw.text((x, top - 30), "token norm (mean)", fill=INK)
    for name, values in norms.items():
        height = values["mean"] / biggest * (bottom - top)
        draw.rectangle((x, bottom - height, x + 40, bottom), fill=NORM)
        draw.text((x, bottom - height - 14), f"{values['mean']:.2f}", fill=INK)
        draw.text((x, bottom + 6), name[:10], fill=INK)
        x += 70
    path = Path(path)
    image.save(path)
    return path
