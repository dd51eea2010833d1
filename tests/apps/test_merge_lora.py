"""`lvlm merge-lora`: a LoRA run's checkpoint merged offline gives the adapter model's logits."""

from __future__ import annotations

import pytest
import torch
from peft.tuners.lora import LoraLayer

from lvlm import VideoLLaVA
from lvlm.apps.merge_lora import main as merge_main
from lvlm.apps.recipe_runner import lightning_main
from lvlm.core.errors import UserError
from lvlm.training.run_checkpoint import load_run_module, read_run_checkpoint
from tests.training.launch import checkpoint_callback
from tests.training.tiny import TinyDataModule, write_recipe

LORA = {"r": 4, "alpha": 8, "dropout": 0.0, "target_modules": ["q_proj", "v_proj", "down_proj"]}

ADAMW_FAST = {"class_path": "torch.optim.AdamW", "init_args": {"lr": 5e-2, "weight_decay": 0.0}}


@pytest.fixture(scope="module")
def lora_run(tmp_path_factory, tokenizer_dir):
    run_dir = tmp_path_factory.mktemp("lora_run")
    trainer = {
        "max_steps": 3,
        "logger": False,
        "default_root_dir": str(run_dir),
        "callbacks": [checkpoint_callback(run_dir / "checkpoints", every=3)],
    }
    recipe = write_recipe(
        run_dir / "lora.yaml", tokenizer_dir, optimisation={"lora": LORA, "optimizer": ADAMW_FAST}, trainer=trainer
    )
    lightning_main("fit", ["-c", str(recipe)])
    return run_dir / "checkpoints" / "epoch=0-step=3.ckpt"


def batch_for(module) -> dict:
    data = TinyDataModule(tokenizer=module.tokenizer, modalities=module.modalities, num_frames=3)
    return data.make_batch(7)


def logits(model: VideoLLaVA, batch: dict) -> torch.Tensor:
    inputs = {k: batch[k] for k in ("input_ids", "attention_mask", "images", "videos")}
    with torch.no_grad():
        return model.eval()(**inputs).logits


def test_merged_model_gives_the_adapter_models_logits(lora_run, tmp_path):
    adapter = load_run_module(read_run_checkpoint(lora_run))
    lora_b = [p for n, p in adapter.model.named_parameters() if ".lora_B." in n]
    assert len(lora_b) == 3 * 2 and all(p.abs().sum() > 0 for p in lora_b)  # trained: the merge changes weights
    batch = batch_for(adapter)
    expected = logits(adapter.model, batch)

    assert merge_main(["--checkpoint", str(lora_run), "--out", str(tmp_path / "merged")]) == 0
    merged = VideoLLaVA.from_pretrained(tmp_path / "merged")
    assert not any("lora" in name for name, _ in merged.named_parameters())
    torch.testing.assert_close(logits(merged, batch), expected, rtol=0, atol=1e-5)
    assert (tmp_path / "merged" / "tokenizer.json").is_file()

    base = load_run_module(read_run_checkpoint(lora_run))
    for module in base.model.modules():  # the same model without its adapters differs: the merge mattered
        if isinstance(module, LoraLayer):
            module.enable_adapters(False)
    assert (logits(base.model, batch) - expected).abs().max() > 1e-4


def test_merge_lora_refuses_a_run_without_adapters(tmp_path, tokenizer_dir, capsys):
    trainer = {
        "max_steps": 1,
        "logger": False,
        "default_root_dir": str(tmp_path),
        "callbacks": [checkpoint_callback(tmp_path / "checkpoints", every=1)],
    }
    lightning_main("fit", ["-c", str(write_recipe(tmp_path / "plain.yaml", tokenizer_dir, trainer=trainer))])
    code = merge_main(
        ["--checkpoint", str(tmp_path / "checkpoints" / "epoch=0-step=1.ckpt"), "--out", str(tmp_path / "m")]
    )
    assert code == 1 and "trained no LoRA adapters" in capsys.readouterr().out


def test_merge_lora_rebuilds_from_the_runs_config_yaml(lora_run, tmp_path):
    """A checkpoint without usable hparams: --run-config takes the config.yaml LightningCLI saved with the run."""
    config = lora_run.parents[1] / "config.yaml"
    assert config.is_file()
    checkpoint = read_run_checkpoint(lora_run)
    checkpoint.pop("hyper_parameters")
    torch.save(checkpoint, tmp_path / "bare.ckpt")
    with pytest.raises(UserError, match="records no hyper-parameters; pass --run-config"):
        merge_main(["--checkpoint", str(tmp_path / "bare.ckpt"), "--out", str(tmp_path / "x")])
    args = ["--checkpoint", str(tmp_path / "bare.ckpt"), "--run-config", str(config), "--out", str(tmp_path / "merged")]
    assert merge_main(args) == 0
    merged = VideoLLaVA.from_pretrained(tmp_path / "merged")
    adapter = load_run_module(read_run_checkpoint(lora_run))
    batch = batch_for(adapter)
    torch.testing.assert_close(logits(merged, batch), logits(adapter.model, batch), rtol=0, atol=1e-5)
