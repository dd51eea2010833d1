"""A test-only ``audio`` modality: a WAV file's first samples laid out as a ``[3, s, s]`` picture for an image tower.

It declares the OpenAI ``input_audio`` part type (``lvlm serve`` routes such parts to it) and ``.wav`` files (``lvlm
chat`` recognises them as its own). The tests also install this source as a plugin package (an entry point of
``lvlm.modalities``), as a real audio plugin would be.
"""

from __future__ import annotations

import io
import os
import wave
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from lvlm.data.decoding import MediaDecodeError
from lvlm.modalities import Modality


class WavModality(Modality):
    """16-bit mono WAV files (``<audio>``)."""

    extensions = ("wav",)
    file_extensions = ("wav",)
    openai_part_types = ("input_audio",)

    def decode(self, payload: Any, *, key: str, num_frames: int, backend: str | None = None) -> torch.Tensor:
        """WAV bytes or a path → ``[n]`` float32 samples in [-1, 1]."""
        source = io.BytesIO(payload) if isinstance(payload, bytes) else os.fspath(payload)
        try:
            with wave.open(source) as wav:
                if wav.getsampwidth() != 2:
                    raise wave.Error("not 16-bit")
                frames = wav.readframes(wav.getnframes())
        except (wave.Error, EOFError) as err:
            raise MediaDecodeError(key, payload, f"not a 16-bit WAV file ({err})") from None
        return torch.from_numpy(np.frombuffer(frames, dtype="<i2").astype(np.float32) / 32768)

    def make_transform(
        self, *, augment: bool = False, seed: int | None = None, normalize: bool = True
    ) -> Callable[[Any], torch.Tensor]:
        side = self.tower_facts.preprocessing.size

        def to_picture(samples: torch.Tensor) -> torch.Tensor:
            flat = torch.zeros(3 * side * side)
            flat[: min(len(samples), len(flat))] = samples[: len(flat)]
            return flat.reshape(3, side, side)

        return to_picture


def write_wav(path: Path, hertz: float = 440.0, seconds: float = 0.4, rate: int = 8000) -> Path:
    """A 16-bit mono sine tone."""
    t = np.arange(int(seconds * rate)) / rate
    samples = (np.sin(2 * np.pi * hertz * t) * 20000).astype("<i2")
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        wav.writeframes(samples.tobytes())
    return path
