"""Checkpoint layouts: lvlm's own, transformers' ``video_llava`` (``-hf``), the original Video-LLaVA,
standalone LanguageBind tower directories and plain causal-LM directories.

Loading never runs code from a checkpoint: weights come from safetensors or ``torch.load(weights_only=True)``,
and classes are looked up in lvlm's tower registry, never imported by a path the checkpoint names.
"""
