"""`lvlm convert`: layout round trips and training-run checkpoints (.ckpt, sharded DCP) keep the logits."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file

from lvlm import VideoLLaVA
from lvlm.apps.convert import main as convert_main
from lvlm.apps.recipe_runner import lightning_main
from tests.models.tiny import FRAMES, pixels, prompt, tiny_hf_model
from tests.training.launch import REPO, checkpoint_callback, torchrun_fit
from tests.training.tiny import TinyDataModule, write_recipe, write_tokenizer


def logits(model: VideoLLaVA, **inputs) -> torch.Tensor:
    with torch.no_grad():
        return model.eval()(**inputs).logits


def test_lvlm_to_hf_to_lvlm_keeps_the_logits(tmp_path):
    tiny_hf_model().save_pretrained(tmp_path / "hf0")
    VideoLLaVA.from_pretrained(tmp_path / "hf0").save_pretrained(tmp_path / "lvlm")
    assert convert_main(["--model", str(tmp_path / "lvlm"), "--to", "hf", "--out", str(tmp_path / "hf")]) == 0
    assert convert_main(["--model", str(tmp_path / "hf"), "--to", "lvlm", "--out", str(tmp_path / "back")]) == 0
    assert (tmp_path / "hf" / "config.json").is_file() and (tmp_path / "back" / "lvlm_config.json").is_file()
    inputs = {
        "input_ids": torch.tensor([prompt("video", 11, "image", 12)]),
        "images": pixels(1),
        "videos": pixels(1, FRAMES, seed=2),
    }
    expected = logits(VideoLLaVA.from_pretrained(tmp_path / "lvlm"), **inputs)
    for name in ("hf", "back"):
        torch.testing.assert_close(
            logits(VideoLLaVA.from_pretrained(tmp_path / name), **inputs), expected, rtol=0, atol=0
        )


@pytest.fixture(scope="module")
def tokenizer_dir(tmp_path_factory):
    return write_tokenizer(tmp_path_factory.mktemp("tokenizer"))


def fit_recipe(tmp_path, tokenizer_dir, name: str, steps: int = 2):
    run_dir = tmp_path / name
    trainer = {
        "max_steps": steps,
        "logger": False,
        "default_root_dir": str(run_dir),
        "callbacks": [checkpoint_callback(run_dir / "checkpoints", every=steps)],
    }
    recipe = write_recipe(
        tmp_path / f"{name}.yaml",
        tokenizer_dir,
        optimisation={"train_llm": True},
        export={"dir": str(run_dir / "model")},
        trainer=trainer,
    )
    return recipe, run_dir


def batch_inputs(model_dir) -> dict:
    from lvlm.inference.session import load_session

    session = load_session(model_dir)
    batch = TinyDataModule(tokenizer=session.tokenizer, modalities=session.modalities, num_frames=3).make_batch(5)
    return {k: batch[k] for k in ("input_ids", "attention_mask", "images", "videos")}


def assert_same_model(converted, exported) -> None:
    inputs = batch_inputs(exported)
    expected = logits(VideoLLaVA.from_pretrained(exported), **inputs)
    torch.testing.assert_close(logits(VideoLLaVA.from_pretrained(converted), **inputs), expected, rtol=0, atol=1e-6)


def test_lightning_ckpt_to_lvlm_dir(tmp_path, tokenizer_dir):
    recipe, run_dir = fit_recipe(tmp_path, tokenizer_dir, "plain")
    lightning_main("fit", ["-c", str(recipe)])
    ckpt = run_dir / "checkpoints" / "epoch=0-step=2.ckpt"
    assert convert_main(["--checkpoint", str(ckpt), "--out", str(tmp_path / "converted")]) == 0
    assert (tmp_path / "converted" / "tokenizer.json").is_file()
    assert_same_model(tmp_path / "converted", run_dir / "model")  # the end-of-fit export holds the same weights


def test_a_missing_checkpoint_is_a_clear_error(tmp_path, capsys):
    assert convert_main(["--checkpoint", str(tmp_path / "nope.ckpt"), "--out", str(tmp_path / "x")]) == 1
    assert "not a Lightning .ckpt file nor a DCP checkpoint folder" in capsys.readouterr().out


@pytest.mark.slow
def test_sharded_dcp_checkpoint_to_lvlm_dir(tmp_path, tokenizer_dir):
    recipe, run_dir = fit_recipe(tmp_path, tokenizer_dir, "fsdp2")
    cpu_fsdp = ["--trainer.accelerator=cpu", "--trainer.devices=2", "--trainer.strategy.data_parallel_size=2"]
    torchrun_fit(2, "-c", str(recipe), "-c", str(REPO / "recipes/trainer/fsdp.yaml"), *cpu_fsdp)
    dcp = run_dir / "checkpoints" / "epoch=0-step=2.ckpt"
    assert (dcp / ".metadata").is_file()
    assert convert_main(["--checkpoint", str(dcp), "--out", str(tmp_path / "converted")]) == 0
    converted = VideoLLaVA.from_pretrained(tmp_path / "converted")  # loads, and holds the run's final weights:
    exported = load_file(run_dir / "model" / "model.safetensors")
    state = converted.state_dict()
    assert set(exported) <= set(state)
    for key, tensor in exported.items():
        torch.testing.assert_close(state[key], tensor, rtol=0, atol=1e-6, msg=key)
