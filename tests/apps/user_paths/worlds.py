"""Worlds and tiny real recipes for the user-path tests: real shards, the real ``LVLMDataModule``, one recipe per
tower family (LanguageBind-style towers, timm ViTs on both modalities, the depth plugin), with LoRA on the LLM so
``lvlm merge-lora`` has adapters to merge.

Every recipe checkpoints after every step (``save_last`` too) into ``<run>/checkpoints`` and exports the model to
``<run>/model``; the data module samples ``FRAMES[family]`` frames per video, never the towers' own count or 8, so
a model that forgot it would show.
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from PIL import Image

from lvlm.data.decoding.encoding import encode_mp4
from lvlm.data.synthetic import write_synthetic_world
from lvlm.data.tokenizer_training import train_tokenizer
from tests.models.tiny import text_dict, vision_dict

MAX_STEPS = 4
FRAMES = {"languagebind": 3, "timm": 2, "depth": 1}
SIZES = {"stage1_train": 4, "stage2_train": 8, "stage2_val": 4, "stage2_test": 4, "samples_per_shard": 4}
LORA = {"r": 4, "alpha": 8, "dropout": 0.0}


@dataclass
class World:
    """Shards, a tokenizer and question files (with their media) of one family."""

    family: str
    root: Path
    train: str
    tokenizer: Path
    questions: Path
    answers: Path
    media: dict[str, Path]


def lvlm_command() -> str:
    """The installed ``lvlm`` console script of this environment."""
    return str(Path(sys.executable).parent / "lvlm")


def synthetic_world(root: Path, family: str) -> World:
    """The quickstart's synthetic world (real jpg/png/mp4 in tars), its tokenizer, two questions."""
    world = write_synthetic_world(root / "world", seed=0, sizes=SIZES)
    tokenizer = train_tokenizer(world.corpus_path.read_text().splitlines(), vocab_size=400)
    tokenizer.save_pretrained(root / "tokenizer")
    media = {"image": _write_image(root / "red.png"), "video": _write_video(root / "right.mp4")}
    questions = [
        {"question_id": "qi", "image": str(media["image"]), "question": "What color is the circle?", "answer": "red"},
        {"question_id": "qv", "video": str(media["video"]), "question": "Where does it move?", "answer": "right"},
    ]
    return _with_questions(World(family, root, str(root / "world/stage2/train-*.tar"), root / "tokenizer",
                                 root / "q.json", root / "a.json", media), questions)  # fmt: skip


def depth_world(root: Path) -> World:
    """The depth plugin's example world turned into shards by ``lvlm shards --folder depth=...``."""
    from lvlm_depth.example import write_world

    write_world(root)
    done = subprocess.run(
        [lvlm_command(), "shards", str(root / "depth.json"), "--folder", f"depth={root / 'depths'}", "--out",
         str(root / "shards")], capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    media = {"depth": root / "depths" / "d016.png"}
    questions = [{"question_id": "qd", "depth": str(media["depth"]), "question": "is the object near or far?",
                  "answer": "near"}]  # fmt: skip
    return _with_questions(World("depth", root, str(root / "shards/shard-*.tar"), root / "tokenizer",
                                 root / "q.json", root / "a.json", media), questions)  # fmt: skip


def _with_questions(world: World, questions: list[dict[str, Any]]) -> World:
    world.questions.write_text(json.dumps(questions))
    answers = [{"question_id": q["question_id"], "answers": [q["answer"]] * 3} for q in questions]
    world.answers.write_text(json.dumps(answers))
    return world


def _write_image(path: Path) -> Path:
    image = Image.new("RGB", (40, 32), (30, 30, 30))
    image.paste((220, 20, 20), (10, 8, 30, 24))
    image.save(path)
    return path


def _write_video(path: Path, frames: int = 8) -> Path:
    video = np.full((frames, 32, 48, 3), 30, np.uint8)
    for i in range(frames):
        x = i * 40 // (frames - 1)
        video[i, 12:20, x : x + 8] = (20, 20, 220)
    path.write_bytes(encode_mp4(video))
    return path


def _modalities(family: str) -> dict[str, Any]:
    if family == "depth":
        tower = {"class_path": "lvlm_depth.DepthTower", "init_args": {"size": 32, "patch": 8, "width": 32,
                 "layers": 1, "heads": 4}}  # fmt: skip
        return {"depth": {"class_path": "lvlm_depth.DepthModality", "init_args": {"tower": tower}}}
    if family == "timm":
        kwargs = {"img_size": 32, "embed_dim": 32, "depth": 2, "num_heads": 4}
        init_args = {"model_name": "vit_tiny_patch16_224", "select_layer": -1, "model_kwargs": kwargs}
        tower = {"class_path": "lvlm.models.vision.timm_tower.TimmVisionTower", "init_args": init_args}
        return {
            "image": {"class_path": "lvlm.modalities.ImageModality", "init_args": {"tower": tower}},
            "video": {"class_path": "lvlm.modalities.VideoModality", "init_args": {"tower": tower}},
        }
    clip = {"config": vision_dict(), "select_layer": -2}
    return {
        "image": {"class_path": "lvlm.modalities.ImageModality", "init_args": {"image_mode": "pad", "tower": {
            "class_path": "lvlm.models.vision.clip_tower.CLIPVisionTower", "init_args": clip}}},
        "video": {"class_path": "lvlm.modalities.VideoModality", "init_args": {"tower": {
            "class_path": "lvlm.models.vision.clip_tower.LanguageBindVideoTower",
            "init_args": clip | {"num_frames": FRAMES[family]}}}},
    }  # fmt: skip


def write_recipe(world: World, run_dir: Path, name: str, callbacks: list[dict[str, Any]] = ()) -> Path:
    """A tiny real recipe: the family's towers, a 2-layer Llama with LoRA, the real data module on the shards."""
    from transformers import AutoTokenizer

    vocab = len(AutoTokenizer.from_pretrained(world.tokenizer))
    llm = text_dict(vocab_size=vocab, pad_token_id=3, bos_token_id=1, eos_token_id=2, max_position_embeddings=1024)
    checkpoints = {
        "class_path": "lightning.pytorch.callbacks.ModelCheckpoint",
        "init_args": {"dirpath": str(run_dir / "checkpoints"), "every_n_train_steps": 1, "save_top_k": -1,
                      "save_last": True},
    }  # fmt: skip
    recipe = {
        "seed_everything": 0,
        "trainer": {
            "accelerator": "cpu", "devices": 1, "max_steps": MAX_STEPS, "enable_progress_bar": False,
            "limit_val_batches": 0, "num_sanity_val_steps": 0, "log_every_n_steps": 1,
            "default_root_dir": str(run_dir), "callbacks": [checkpoints, *callbacks],
        },
        "model": {
            "parts": {
                "llm": {"class_path": "lvlm.models.language_model.LanguageModel", "init_args": {"config": llm}},
                "modalities": _modalities(world.family),
                "tokenizer": str(world.tokenizer),
            },
            "optimisation": {
                "train_projector": True,
                "lora": LORA,
                "optimizer": {"class_path": "torch.optim.AdamW", "init_args": {"lr": 1e-2, "weight_decay": 0.0}},
            },
            "export": {"dir": str(run_dir / "model")},
            "max_new_tokens": 3,
        },
        "data": {
            "class_path": "lvlm.data.datamodule.LVLMDataModule",
            "init_args": {
                "sources": {"train": [{"pattern": world.train, "weight": 1.0}]},
                "sampling": {"batches_per_epoch": 3, "shuffle_buffer": 4},
                "media": {"num_frames": FRAMES[world.family]},
                "loader": {"batch_size": 2},
                "max_length": 512,
            },
        },
    }  # fmt: skip
    path = world.root / f"{name}.yaml"
    path.write_text(yaml.safe_dump(recipe, sort_keys=False))
    return path
