"""A tiny tokenizer trained in-process (no download), shared by the data tests.

Import the helpers (`from tokenizer_fixtures import tiny_tokenizer, tiny_slots`) or the pytest fixture
(`from tokenizer_fixtures import tokenizer  # noqa: F401`).
"""

from __future__ import annotations

import functools

import pytest
from transformers import PreTrainedTokenizerFast

from lvlm.data.media import MediaSlot
from lvlm.data.templates import llava_v1, vicuna_v1
from lvlm.data.tokenizer_training import train_tokenizer

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


def tiny_slots(image_tokens: int = 4, frame_tokens: int = 3, size: int = 32) -> list[MediaSlot]:
    """Image and video slots with few visual tokens and a small input side (fast tests)."""
    common = {"size": size, "mean": CLIP_MEAN, "std": CLIP_STD}
    return [
        MediaSlot("<image>", "<image>", "images", "image", image_tokens, **common),
        MediaSlot("<video>", "<video>", "videos", "video", frame_tokens, **common),
    ]


@pytest.fixture(scope="session")
def tokenizer() -> PreTrainedTokenizerFast:
    """The tiny tokenizer as a pytest fixture."""
    return tiny_tokenizer()
