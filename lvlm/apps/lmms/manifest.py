"""The ``lmms_eval.models`` entry point: registers the model name ``lvlm`` with lmms-eval (0.7 and later).

lmms-eval loads every entry point of that group when ``lmms_eval.models`` is imported and accepts a callable
returning a ``ModelManifest``. The manifest names the class by path, so torch and lvlm load only when the model
is asked for.
"""

from __future__ import annotations

from lmms_eval.models.registry_v2 import ModelManifest

MODEL_NAME = "lvlm"
MODEL_CLASS = "lvlm.apps.lmms.model.LvlmModel"


def manifest() -> ModelManifest:
    """The lmms-eval registration of lvlm: a "simple" model (prompt text + ``doc_to_visual`` media)."""
    return ModelManifest(model_id=MODEL_NAME, simple_class_path=MODEL_CLASS)
