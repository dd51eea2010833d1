"""Fixtures: one tiny checkpoint on disk (saved once per session) and real media files."""

from __future__ import annotations

import json

import pytest

from lvlm.inference.session import load_session
from tests.inference.tiny_checkpoint import save_tiny_checkpoint, write_image, write_mp4


@pytest.fixture(scope="session")
def checkpoint_dir(tmp_path_factory):
    return save_tiny_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny", max_positions=160)


@pytest.fixture(scope="session")
def session(checkpoint_dir):
    return load_session(checkpoint_dir)


@pytest.fixture(scope="session")
def media_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("media")
    write_image(root / "red.png", (220, 20, 20))
    write_image(root / "blue.jpg", (20, 20, 220), size=(32, 44))
    write_mp4(root / "right.mp4", seed=0)
    write_mp4(root / "other.mp4", num_frames=12, seed=2)
    (root / "broken.mp4").write_bytes(b"not a video at all")
    return root


QUESTIONS = [
    {"id": "q0", "image": "red.png", "question": "what colour is the shape?", "answer": "red", "category": "colour"},
    {"id": "q1", "video": "right.mp4", "question": "where does the square move?", "answer": "right"},
    {"id": "q2", "video": "missing.mp4", "question": "where does it move?", "answer": "left"},
    {"id": "q3", "question": "answer yes or no", "answer": "yes"},
    {"id": "q4", "image": "blue.jpg", "question": "what colour is the shape?", "answer": "blue"},
    {"id": "q5", "video": "broken.mp4", "question": "describe this clip", "answer": "a clip"},
    {
        "key": "q6",
        "image": ["red.png"],
        "video": "other.mp4",
        "conversations": [
            {"from": "human", "value": "<video><image>\ndescribe the video and the picture"},
            {"from": "gpt", "value": "a square moves; a red square"},
        ],
    },
    {"id": "q7", "video": "other.mp4", "question": "how many objects are there?", "answer": "one"},
]


@pytest.fixture(scope="session")
def questions_file(media_dir):
    path = media_dir / "questions.json"
    path.write_text(json.dumps(QUESTIONS))
    return path
