"""lvlm: Video-LLaVA as a PyTorch Lightning component package.

Public names: ``from lvlm import VideoLLaVA, LVLMModule`` (and ``from lvlm.data import LVLMDataModule``).
"""

import importlib

__version__ = "0.1.0"

_EXPORTS = {"VideoLLaVA": "lvlm.models.video_llava", "LVLMModule": "lvlm.training.module"}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    # Lazy: `lvlm --help` and the data side must not pay for importing transformers' models or Lightning.
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'lvlm' has no attribute {name!r}")
