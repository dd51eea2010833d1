"""Tiny configs and inputs shared by the model tests (built in-process, no downloads)."""

from __future__ import annotations

import torch
from transformers import CLIPVisionConfig, LlamaConfig, VideoLlavaConfig, VideoLlavaForConditionalGeneration

IMAGE_ID, VIDEO_ID, PAD_ID = 90, 91, 0
SIZE, PATCH = 28, 14  # 2x2 patches: 4 image tokens (CLS dropped), 5 per video frame (CLS kept)
FRAMES = 3


def vision_dict(**overrides) -> dict:
    return (
        dict(
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=3,
            num_attention_heads=4,
            image_size=SIZE,
            patch_size=PATCH,
            projection_dim=16,
        )
        | overrides
    )


def text_dict(**overrides) -> dict:
    return (
        dict(
            model_type="llama",
            vocab_size=96,
            hidden_size=48,
            intermediate_size=96,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            max_position_embeddings=512,
            pad_token_id=PAD_ID,
            bos_token_id=1,
            eos_token_id=2,
        )
        | overrides
    )


def tiny_hf_model(seed: int = 0) -> VideoLlavaForConditionalGeneration:
    torch.manual_seed(seed)
    text = {k: v for k, v in text_dict().items() if k != "model_type"}
    config = VideoLlavaConfig(
        vision_config=CLIPVisionConfig(**vision_dict()),
        text_config=LlamaConfig(**text),
        image_token_index=IMAGE_ID,
        video_token_index=VIDEO_ID,
        image_seq_length=4,
        video_seq_length=5 * FRAMES,
    )
    return VideoLlavaForConditionalGeneration(config).eval()


def prompt(*parts: str | int, image_tokens: int = 4, video_tokens: int = 5 * FRAMES) -> list[int]:
    """Ids from parts: ints are text ids, "image"/"video" expand to their placeholder runs."""
    ids: list[int] = [1]
    for part in parts:
        if part == "image":
            ids += [IMAGE_ID] * image_tokens
        elif part == "video":
            ids += [VIDEO_ID] * video_tokens
        else:
            ids.append(int(part))
    return ids


def pixels(n: int, frames: int | None = None, seed: int = 1) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    shape = (n, 3, SIZE, SIZE) if frames is None else (n, frames, 3, SIZE, SIZE)
    return torch.randn(shape, generator=generator)
