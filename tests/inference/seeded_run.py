"""Seeded sampling in a process of its own (an independent run for the reproducibility test).

    python -m tests.inference.seeded_run MODEL_DIR MEDIA_DIR SEED

loads the model itself, builds the test prompts and prints the sampled ids of the first two as JSON.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from lvlm.data.collate import ProcessedSample
from lvlm.inference.batch_generate import GenerationSettings, generate_ids
from lvlm.inference.media_files import load_media
from lvlm.inference.prompts import prepare_prompt, question_conversation
from lvlm.inference.session import InferenceSession, load_session


def mixed_prompts(session: InferenceSession, media_dir: Path) -> list[ProcessedSample]:
    """Five prompts: an image, a video, text only, both, another image (media from ``tests/inference/conftest``)."""
    image = load_media(session, "image", media_dir / "red.png")
    blue = load_media(session, "image", media_dir / "blue.jpg")
    video = load_media(session, "video", media_dir / "right.mp4")
    other = load_media(session, "video", media_dir / "other.mp4")
    items = [
        ("what colour is the shape?", [("image", image)]),
        ("where does the square move?", [("video", video)]),
        ("answer yes or no", []),
        ("describe the video and the picture", [("image", blue), ("video", other)]),
        ("what colour is the small object on the background?", [("image", blue)]),
    ]
    return [
        prepare_prompt(session, question_conversation(q, [session.modality(k) for k, _ in media]), media, key=str(i))
        for i, (q, media) in enumerate(items)
    ]


def sampled(seed: int) -> GenerationSettings:
    """The sampling settings of the test: temperature 1, four tokens, ``seed``."""
    return GenerationSettings(max_new_tokens=4, temperature=1.0, seed=seed)


if __name__ == "__main__":
    model, media, seed = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])
    session = load_session(model)
    print(json.dumps(generate_ids(session, mixed_prompts(session, media)[:2], sampled(seed))))
