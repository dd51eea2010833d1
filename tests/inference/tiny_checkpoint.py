"""A tiny checkpoint saved to disk (lvlm layout + its own trained tokenizer) and real media files for the tests."""

from __future__ import annotations

import functools
from pathlib import Path

import av
import numpy as np
import torch
from PIL import Image

from lvlm.data.templates import llava_v1, vicuna_v1
from lvlm.data.tokenizer_training import train_tokenizer

WORDS = (
    "what colour is the shape in the image video a red green blue yellow circle square triangle moves left right "
    "up down describe this picture clip there is one two three small large object on background answer yes no"
)
SIZE, PATCH, FRAMES = 28, 14, 4  # 4 tokens per image (CLS dropped), 5 per video frame (CLS kept)


@functools.lru_cache(maxsize=1)
def tiny_tokenizer():
    return train_tokenizer([WORDS, vicuna_v1.system, llava_v1.system, "USER: ASSISTANT: \n?.,"] * 20, vocab_size=300)


def vision_dict() -> dict:
    return dict(
        hidden_size=32, intermediate_size=64, num_hidden_layers=3, num_attention_heads=4, image_size=SIZE,
        patch_size=PATCH, projection_dim=16,
    )  # fmt: skip


def build_tiny_model(
    seed: int = 0,
    chat_template: str = "vicuna_v1",
    max_positions: int = 512,
    temporal_attention: bool = True,
    modalities=None,
):
    """A random tiny VideoLLaVA (CLIP image tower, LanguageBind video tower, 2-layer Llama) and its tokenizer;
    ``modalities`` by name, else towers only."""
    from lvlm.models.language_model import LanguageModel
    from lvlm.models.video_llava import VideoLLaVA
    from lvlm.models.vision.clip_tower import CLIPVisionTower, LanguageBindVideoTower

    torch.manual_seed(seed)
    tok = tiny_tokenizer()
    llm = LanguageModel(
        config=dict(
            model_type="llama",
            vocab_size=len(tok),
            hidden_size=48,
            intermediate_size=96,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            max_position_embeddings=max_positions,
            pad_token_id=tok.pad_token_id,
            bos_token_id=tok.bos_token_id,
            eos_token_id=tok.eos_token_id,
        )  # fmt: skip
    )
    towers = {
        "image": CLIPVisionTower(vision_dict()),
        "video": LanguageBindVideoTower(vision_dict(), num_frames=FRAMES, temporal_attention=temporal_attention),
    }
    model = VideoLLaVA.build(llm, towers, tokenizer=tok, modalities=modalities, chat_template=chat_template)
    return model.eval(), tok


def save_tiny_checkpoint(directory: Path, **kwargs) -> Path:
    model, tok = build_tiny_model(**kwargs)
    model.save_pretrained(directory, tokenizer=tok)
    return directory


def write_image(path: Path, colour: tuple[int, int, int] = (200, 30, 30), size: tuple[int, int] = (40, 32)) -> Path:
    image = Image.new("RGB", size, (20, 20, 20))
    image.paste(colour, (size[0] // 4, size[1] // 4, 3 * size[0] // 4, 3 * size[1] // 4))
    image.save(path)
    return path


def write_mp4(path: Path, num_frames: int = 8, size: tuple[int, int] = (48, 32), seed: int = 0) -> Path:
    """An H.264 mp4 of a white square moving right over a gradient, written with PyAV."""
    width, height = size
    frames = np.zeros((num_frames, height, width, 3), np.uint8)
    frames[..., 0] = np.linspace(0, 255, width, dtype=np.uint8)[None, None, :]
    frames[..., 2] = 40 + seed * 50
    for i in range(num_frames):
        x = i * (width - 8) // max(1, num_frames - 1)
        frames[i, 8:16, x : x + 8] = 255
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("libx264", rate=8)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for image in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
        container.mux(stream.encode(None))
    return path
