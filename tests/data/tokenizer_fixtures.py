"""A tiny tokenizer trained in-process (no download), shared by the data tests.

Import the helpers (`from tokenizer_fixtures import tiny_tokenizer, tiny_modalities`) or the pytest fixture
(`from tokenizer_fixtures import tokenizer  # noqa: F401`).
"""

from __future__ import annotations

import functools
from typing import Any

import pytest
import torch
from transformers import PreTrainedTokenizerFast

from lvlm.data.templates import llava_v1, vicuna_v1
from lvlm.data.tokenizer_training import train_tokenizer
from lvlm.modalities import ImageModality, Modality, VideoModality
from lvlm.models.vision.base import Preprocessing, VisionTower

WORDS = (
    "what colour is the shape in the image video a red green blue yellow circle square triangle moves left right "
    "up down stays still describe this picture clip there is one two three small large object on background "
    "answer question with single word yes no how many frames"
)

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


def corpus() -> list[str]:
    """Training texts: the vocabulary words, the template system prompts and role names."""
    return [WORDS, vicuna_v1.system, llava_v1.system, "USER: ASSISTANT: \n?.,"] * 20


@functools.lru_cache(maxsize=1)
def tiny_tokenizer() -> PreTrainedTokenizerFast:
    """A 400-token BPE tokenizer with `<image>`, `<video>` and `<depth>` special tokens (cached)."""
    return train_tokenizer(corpus(), vocab_size=400, extra_special_tokens=("<image>", "<video>", "<depth>"))


class PoolTower(VisionTower):
    """A tiny real tower: ``tokens`` average-pooled cells of the picture, projected to ``width`` (no download)."""

    def __init__(self, tokens: int = 4, size: int = 32, width: int = 8, channels: int = 3) -> None:
        super().__init__()
        self.tokens, self.size, self.width, self.channels = tokens, size, width, channels
        self.proj = torch.nn.Linear(channels, width)

    @property
    def preprocessing(self) -> Preprocessing:
        return Preprocessing(self.size, CLIP_MEAN, CLIP_STD)

    @property
    def hidden_size(self) -> int:
        return self.width

    @property
    def tokens_per_image(self) -> int:
        return self.tokens

    @property
    def block_classes(self) -> tuple[type[torch.nn.Module], ...]:
        return ()

    def to_config(self) -> dict[str, Any]:
        return {"tokens": self.tokens, "size": self.size, "width": self.width, "channels": self.channels}

    def encode_frames(self, pixels: torch.Tensor, num_frames: int) -> torch.Tensor:
        cells = torch.nn.functional.adaptive_avg_pool2d(pixels, (1, self.tokens)).flatten(2).transpose(1, 2)
        return self.proj(cells)


def tiny_modalities(image_tokens: int = 4, frame_tokens: int = 3, size: int = 32) -> list[Modality]:
    """Image and video modalities with tiny towers: few visual tokens and a small input side (fast tests)."""
    return [
        ImageModality(functools.partial(PoolTower, image_tokens, size)).bind("image"),
        VideoModality(functools.partial(PoolTower, frame_tokens, size)).bind("video"),
    ]


@pytest.fixture(scope="session")
def tokenizer() -> PreTrainedTokenizerFast:
    """The tiny tokenizer as a pytest fixture."""
    return tiny_tokenizer()
