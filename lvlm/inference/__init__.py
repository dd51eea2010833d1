"""Inference: load a checkpoint as a session, turn questions, chat turns and OpenAI requests into prompts, and run
them through the one generation engine (:mod:`lvlm.models.generation`): batched prediction to JSONL (``predict*``),
the terminal chat, the OpenAI-compatible server (``serve_*``) and answer scoring.

Names are imported on first use, so ``lvlm chat`` can check its arguments before torch loads.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "InferenceSession": "lvlm.inference.session",
    "TemplateNotRecordedError": "lvlm.inference.session",
    "load_session": "lvlm.inference.session",
    "GenerationSettings": "lvlm.inference.batch_generate",
    "generate_batch": "lvlm.inference.batch_generate",
    "generate_ids": "lvlm.inference.batch_generate",
    "generate": "lvlm.inference.batch_generate",
    "Conversation": "lvlm.inference.prompts",
    "prepare_prompt": "lvlm.inference.prompts",
    "load_media": "lvlm.inference.media_files",
    "Question": "lvlm.inference.questions",
    "questions_from_file": "lvlm.inference.question_files",
    "questions_from_records": "lvlm.inference.questions",
    "questions_from_shards": "lvlm.inference.question_shards",
    "PredictionResult": "lvlm.inference.predict",
    "answer": "lvlm.inference.predict",
    "predict": "lvlm.inference.predict",
    "predict_records": "lvlm.inference.predict",
    "BatchScheduler": "lvlm.inference.batch_scheduler",
    "ServeLimits": "lvlm.inference.serve_requests",
    "create_app": "lvlm.inference.serve_app",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'lvlm.inference' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
