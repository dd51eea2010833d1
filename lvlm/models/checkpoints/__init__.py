"""Checkpoint layouts: lvlm's own, transformers' ``video_llava`` (``-hf``), the original Video-LLaVA,
standalone LanguageBind tower directories and plain causal-LM directories.

Loading never runs code from a checkpoint: weights come from safetensors or ``torch.load(weights_only=True)``,
and class paths in an lvlm config resolve only to component classes of lvlm or of a registered plugin
(:mod:`lvlm.core.registry`), refused before import otherwise.
"""
