"""Evaluation: the paper's protocols (video QA with a judge, POPE, VQA soft accuracy) and the synthetic world.

Predictions come in as files (JSONL from ``lvlm predict``); nothing here imports a model or Lightning, and
torch is imported only by POPE's metrics and the TensorBoard writer.
"""

from lvlm.eval.evaluate import PROTOCOLS, evaluate_predictions
from lvlm.eval.records import EvalInputError
from lvlm.eval.results import EvalResult, write_all
from lvlm.eval.synthetic_qa import SyntheticRow, render_synthetic_table, synthetic_rows
from lvlm.eval.video_qa_data import VideoQAItem, load_video_qa

__all__ = [
    "PROTOCOLS",
    "EvalInputError",
    "EvalResult",
    "SyntheticRow",
    "VideoQAItem",
    "evaluate_predictions",
    "load_video_qa",
    "render_synthetic_table",
    "synthetic_rows",
    "write_all",
]
