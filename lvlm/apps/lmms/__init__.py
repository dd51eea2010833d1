"""lmms-eval adapter: ``lmms-eval --model lvlm --model_args pretrained=DIR`` evaluates any lvlm model.

lmms-eval (``pip install -e ".[lmms-eval]"``) finds the model through the ``lmms_eval.models`` entry point that
points at :func:`lvlm.apps.lmms.manifest.manifest`; the model class is :class:`lvlm.apps.lmms.model.LvlmModel`.
Nothing in lvlm imports this package; only lmms-eval does.
"""
