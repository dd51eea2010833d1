"""A model whose image tower is a timm ViT (the separated-MAE ablation) opens in every command that loads one:
the saved model records the tower by class path (issue: "tower 'image' is of type 'timm', not registered")."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import torch

from lvlm import VideoLLaVA
from lvlm.apps.cli import run_command
from lvlm.inference.batch_generate import GenerationSettings
from lvlm.inference.predict import answer
from lvlm.inference.session import load_session
from lvlm.models.language_model import LanguageModel
from lvlm.models.vision.clip_tower import LanguageBindVideoTower
from lvlm.models.vision.timm_tower import TimmVisionTower
from tests.inference.tiny_checkpoint import FRAMES, tiny_tokenizer, write_image


def save_timm_model(directory):
    torch.manual_seed(0)
    tok = tiny_tokenizer()
    width = 32
    image = TimmVisionTower(
        "vit_tiny_patch16_224",
        select_layer=-2,
        model_kwargs={"img_size": 32, "embed_dim": width, "depth": 2, "num_heads": 4},
    )
    video = LanguageBindVideoTower(
        dict(hidden_size=width, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4, image_size=28,
             patch_size=14),
        num_frames=FRAMES,
    )  # fmt: skip
    llm = LanguageModel(
        config=dict(model_type="llama", vocab_size=len(tok), hidden_size=48, intermediate_size=96, num_hidden_layers=2,
                    num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
                    pad_token_id=tok.pad_token_id, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id)
    )  # fmt: skip
    model = VideoLLaVA.build(llm, {"image": image, "video": video}, tokenizer=tok).eval()
    model.save_pretrained(directory, tokenizer=tok)
    return model


def chat(model_dir: Path, image: Path, question: str) -> str:
    """The first answer of ``lvlm chat --image IMAGE`` (greedy, four tokens) to ``question`` typed on stdin."""
    command = [sys.executable, "-m", "lvlm", "chat", "--model", str(model_dir), "--image", str(image)]
    command += ["--temperature", "0", "--max-new-tokens", "4"]
    done = subprocess.run(command, input=f"{question}\n/exit\n", capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and "ASSISTANT: " in done.stdout, done.stdout + done.stderr
    return done.stdout.split("ASSISTANT: ")[1].split("\nUSER:")[0].strip()  # a reply may hold line breaks


def test_a_timm_tower_model_loads_chats_predicts_and_converts(tmp_path):
    model = save_timm_model(tmp_path / "mae")
    config = json.loads((tmp_path / "mae" / "lvlm_config.json").read_text())
    assert config["towers"]["image"]["class_path"] == "lvlm.models.vision.timm_tower.TimmVisionTower"
    image = write_image(tmp_path / "red.png")

    session = load_session(tmp_path / "mae")
    assert session.model.towers["image"].tokens_per_image == 4  # (32 / 16)^2 patches, prefix dropped
    reply = answer(session, "What color is it?", [image], GenerationSettings(max_new_tokens=4))
    assert reply  # greedy, four tokens of a random model: some text
    assert chat(tmp_path / "mae", image, "What color is it?") == reply  # `lvlm chat` answers as the library does

    assert (
        run_command("convert", ["--model", str(tmp_path / "mae"), "--to", "lvlm", "--out", str(tmp_path / "copy")]) == 0
    )
    copy, original = VideoLLaVA.from_pretrained(tmp_path / "copy").state_dict(), model.state_dict()
    assert copy.keys() == original.keys()
    assert all(torch.equal(tensor, original[key]) for key, tensor in copy.items())
    assert (
        answer(load_session(tmp_path / "copy"), "What color is it?", [image], GenerationSettings(max_new_tokens=4))
        == reply
    )

    questions = tmp_path / "q.jsonl"
    questions.write_text(json.dumps({"id": "q0", "question": "What color is it?", "image": str(image)}) + "\n")
    out = tmp_path / "answers.jsonl"
    args = ["--model", str(tmp_path / "mae"), "--questions", str(questions), "--out", str(out), "--no-progress"]
    assert run_command("predict", [*args, "--max-new-tokens", "4"]) == 0
    (record,) = [json.loads(line) for line in out.read_text().splitlines()]
    assert record["prediction"] == reply
