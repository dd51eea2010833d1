"""lvlm: Video-LLaVA as a PyTorch Lightning component package."""

__version__ = "0.1.0"
