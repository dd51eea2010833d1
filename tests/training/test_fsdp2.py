"""Two CPU processes with ModelParallelStrategy (FSDP2 over gloo): sharded checkpoints and exact resume, with
ranks whose batches hold different media (images on one; videos, then text only, on the other).

The run uses recipes/trainer/fsdp.yaml as is (bf16 compute, fp32 reduction, activation checkpointing)
with the device count overridden for CPU, through `torchrun -m lvlm fit` as docs/training.md shows.
"""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file
from torch.distributed.checkpoint.format_utils import dcp_to_torch_save

from tests.training.launch import REPO, checkpoint_callback, torchrun_fit
from tests.training.tiny import write_recipe

CPU_FSDP = ["--trainer.accelerator=cpu", "--trainer.devices=2", "--trainer.strategy.data_parallel_size=2"]
# rank 0 trains on image batches, rank 1 on video and text-only batches: the sharded towers still all-gather alike
MEDIA_BY_RANK = "--data.init_args.media_by_rank=true"


def recipe(tmp_path, tokenizer_dir, name: str):
    run_dir = tmp_path / name
    trainer = {
        "max_steps": 4,
        "logger": False,
        "default_root_dir": str(run_dir),
        "callbacks": [checkpoint_callback(run_dir / "checkpoints", every=2)],
    }
    path = write_recipe(
        tmp_path / f"{name}.yaml",
        tokenizer_dir,
        optimisation={"train_llm": True},
        export={"dir": str(run_dir / "model")},
        trainer=trainer,
    )
    return ["-c", str(path), "-c", str(REPO / "recipes/trainer/fsdp.yaml"), *CPU_FSDP, MEDIA_BY_RANK], run_dir


@pytest.mark.slow
def test_fsdp2_sharded_checkpoint_and_resume(tmp_path, tokenizer_dir):
    args, full = recipe(tmp_path, tokenizer_dir, "full")
    run = torchrun_fit(2, *args)
    # No sharded unit returns a view (an in-place op on one would skip its all-gather; torch warns at every step).
    assert "returned a view tensor" not in run.stdout + run.stderr
    step2 = full / "checkpoints" / "epoch=0-step=2.ckpt"
    assert sorted(p.name for p in step2.iterdir()) == [".metadata", "__0_0.distcp", "__1_0.distcp", "meta.pt"]
    meta = torch.load(step2 / "meta.pt", weights_only=True)
    assert meta["global_step"] == 2 and meta["TinyDataModule"] == {"epoch": 0, "batches": 2}

    args, resumed = recipe(tmp_path, tokenizer_dir, "resumed")
    torchrun_fit(2, *args, f"--ckpt_path={step2}")
    meta = torch.load(resumed / "checkpoints" / "epoch=0-step=4.ckpt" / "meta.pt", weights_only=True)
    assert meta["global_step"] == 4 and meta["TinyDataModule"] == {"epoch": 0, "batches": 4}

    expected, got = load_file(full / "model" / "model.safetensors"), load_file(resumed / "model" / "model.safetensors")
    assert expected.keys() == got.keys()
    for key in expected:
        torch.testing.assert_close(got[key], expected[key], rtol=0, atol=1e-6, msg=key)

    # The directory exported after FSDP2 names registered tower classes, not FSDP's run-time wrappers.
    from lvlm import VideoLLaVA

    reloaded = VideoLLaVA.from_pretrained(full / "model")
    assert not any(type(t).__name__.startswith("FSDP") for t in reloaded.towers.values())
    torch.testing.assert_close(reloaded.state_dict()["projector.0.weight"], expected["projector.0.weight"])

    # The sharded checkpoint converts to one file: {"state_dict": {"model.<VideoLLaVA key>": ...}, "optimizer_0": ...}.
    dcp_to_torch_save(step2, tmp_path / "step2.pt")
    at_step2 = torch.load(tmp_path / "step2.pt", weights_only=True)["state_dict"]
    assert not torch.equal(at_step2["model.projector.0.weight"], expected["projector.0.weight"])  # steps 3-4 trained
    towers = [key for key in expected if key.startswith("towers.")]
    assert towers and all(torch.equal(at_step2[f"model.{key}"], expected[key]) for key in towers)  # frozen
