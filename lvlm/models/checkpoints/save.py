"""``VideoLLaVA.save_pretrained``: lvlm's layout or transformers' ``video_llava`` layout."""

from __future__ import annotations

from pathlib import Path

from lvlm.models.checkpoints.hf_layout import save_hf
from lvlm.models.checkpoints.lvlm_layout import save_lvlm


def save_model(model, directory: str | Path, layout: str = "lvlm", tokenizer=None) -> Path:
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    if layout == "lvlm":
        save_lvlm(model, directory)
    elif layout == "hf":
        save_hf(model, directory)
    else:
        raise ValueError(f"unknown layout {layout!r}: use 'lvlm' or 'hf'")
    if tokenizer is not None:
        tokenizer.save_pretrained(directory)
    return directory
