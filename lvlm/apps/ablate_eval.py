"""One ``lvlm ablate`` run's results: held-out accuracy and the trained model's alignment diagnostics.

Both are also written as scalars into the run's TensorBoard folder (``eval/...``, ``alignment/...``), so the
runs under ``OUT/runs`` compare side by side in TensorBoard.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


def evaluate_run(run_dir: Path, world_dir: Path, videos: int) -> dict[str, Any]:
    """Greedy answers to the world's test questions and :func:`measure_alignment` on its test videos.

    Args:
        run_dir: a run folder with ``model/`` (the exported model) and ``runs/stage2/tensorboard``.
        world_dir: the synthetic world (``stage2/test-*.tar``).
        videos: videos measured (retrieval is over this batch).

    Returns:
        ``{"rows": [synthetic table rows as dicts], "alignment": report}``.
    """
    from lvlm.apps.synthetic_runs import evaluate
    from lvlm.eval.synthetic_qa import synthetic_rows
    from lvlm.inference.session import load_session
    from lvlm.training.alignment_callback import flat_metrics, measure_alignment, read_media

    records = evaluate(run_dir / "model", world_dir)
    rows = [r._asdict() for r in synthetic_rows(records)]
    session = load_session(run_dir / "model")
    shards = sorted((world_dir / "stage2").glob("test-*.tar"))
    items = read_media(shards, session.modalities, videos)
    report = measure_alignment(session.model, session.modalities, items, session.num_frames)
    scalars = {f"eval/{r['question_type']}/{r['modality']}/accuracy": r["accuracy"] for r in rows}
    _log_scalars(run_dir / "runs" / "stage2" / "tensorboard", scalars | flat_metrics(report))
    return {"rows": rows, "alignment": report}


def _log_scalars(log_dir: Path, scalars: dict[str, float]) -> None:
    from torch.utils.tensorboard import SummaryWriter

    writer = SummaryWriter(str(log_dir))
    try:
        for name, value in scalars.items():
            writer.add_scalar(name, value, 0)
    finally:
        writer.close()
