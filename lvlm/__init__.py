"""lvlm: Video-LLaVA as a PyTorch Lightning component package."""

__version__ = "0.1.0"

__all__ = ["VideoLLaVA"]


def __getattr__(name: str):
    # Lazy: `lvlm --help` and the data side must not pay for importing transformers' models.
    if name == "VideoLLaVA":
        from lvlm.models.video_llava import VideoLLaVA

        return VideoLLaVA
    raise AttributeError(f"module 'lvlm' has no attribute {name!r}")
