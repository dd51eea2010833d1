"""A tiny depth world for trying the plugin on a CPU: ``python -m lvlm_depth.example DIR``.

Writes into ``DIR``: ``depths/*.png`` (32x32 16-bit depth maps in millimetres: a square in front of a far
wall, the square either near or far), ``depth.json`` (training records naming their map in a ``depth``
field), ``questions.json`` and ``answers.json`` (a question file for ``lvlm predict`` / ``lvlm eval vqa``),
and ``tokenizer/`` (a small BPE tokenizer trained on the world's words; no download).
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

import numpy as np
from PIL import Image

from lvlm.data.templates import vicuna_v1
from lvlm.data.tokenizer_training import train_tokenizer

SIDE = 32
WALL_MM = 9000
DISTANCES_MM = {"near": 800, "far": 6000}
QUESTION = "is the object near or far?"


def depth_map(distance_mm: int, rng: random.Random) -> np.ndarray:
    """A ``[32, 32]`` uint16 map: the wall at 9 m, a square of side 8-14 px at ``distance_mm``."""
    depth = np.full((SIDE, SIDE), WALL_MM, dtype=np.uint16)
    side = rng.randint(8, 14)
    top, left = rng.randint(0, SIDE - side), rng.randint(0, SIDE - side)
    depth[top : top + side, left : left + side] = distance_mm
    return depth


def write_depth_png(path: Path, depth: np.ndarray) -> Path:
    """Save a uint16 array as a 16-bit grayscale PNG."""
    Image.fromarray(depth.astype(np.uint16)).save(path)
    return path


def write_world(root: str | Path, train: int = 16, questions: int = 4, seed: int = 0) -> Path:
    """Write the world (see the module docstring) into ``root``; returns ``root``."""
    root, rng = Path(root), random.Random(seed)
    (root / "depths").mkdir(parents=True, exist_ok=True)
    records, asked, answers = [], [], []
    for i in range(train + questions):
        label = "near" if i % 2 == 0 else "far"
        name = f"d{i:03d}.png"
        write_depth_png(root / "depths" / name, depth_map(DISTANCES_MM[label], rng))
        if i < train:
            turns = [{"from": "human", "value": f"<depth>\n{QUESTION}"}, {"from": "gpt", "value": label}]
            records.append({"id": f"train{i}", "depth": name, "conversations": turns})
        else:
            asked.append({"question_id": f"q{i}", "depth": f"depths/{name}", "question": QUESTION, "answer": label})
            answers.append({"question_id": f"q{i}", "answers": [label] * 3})
    (root / "depth.json").write_text(json.dumps(records, indent=1))
    (root / "questions.json").write_text(json.dumps(asked, indent=1))
    (root / "answers.json").write_text(json.dumps(answers, indent=1))
    words = f"{QUESTION} near far the object depth map USER: ASSISTANT: {vicuna_v1.system}"
    train_tokenizer([words] * 20, vocab_size=200).save_pretrained(root / "tokenizer")
    return root


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lvlm_depth.example", description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="folder to write the world into")
    write_world(parser.parse_args(argv).out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
