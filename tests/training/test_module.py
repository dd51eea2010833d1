"""`lvlm fit` end to end on a tiny recipe: fast_dev_run, TensorBoard scalars, exports, `lvlm run`, dispatch."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from lvlm import VideoLLaVA
from lvlm.apps import fit
from lvlm.apps import recipe_runner as cli
from lvlm.training.rebuild import rebuild_module
from tests.training.tiny import write_recipe, write_tokenizer


@pytest.fixture(scope="module")
def tokenizer_dir(tmp_path_factory):
    return write_tokenizer(tmp_path_factory.mktemp("tokenizer"))


def test_fit_fast_dev_run_exports_projector_and_model(tmp_path, tokenizer_dir):
    recipe = write_recipe(
        tmp_path / "tiny.yaml",
        tokenizer_dir,
        optimisation={"train_llm": True},
        export={"projector": str(tmp_path / "stage1" / "projector.safetensors"), "dir": str(tmp_path / "model")},
        trainer={"fast_dev_run": 2, "default_root_dir": str(tmp_path / "run")},
    )
    assert cli.lightning_main("fit", ["-c", str(recipe)]) == 0
    projector = load_file(tmp_path / "stage1" / "projector.safetensors")
    model = VideoLLaVA.from_pretrained(tmp_path / "model")
    assert sorted(projector) == ["0.bias", "0.weight", "2.bias", "2.weight"]
    for key, value in projector.items():
        assert torch.equal(model.projector.state_dict()[key], value)
    assert model.placeholder_ids == [4, 5]  # the tokenizer's own ids: the data and the model agree
    assert (tmp_path / "model" / "tokenizer.json").is_file()


def test_fit_logs_loss_lr_grad_norm_and_throughput(tmp_path, tokenizer_dir):
    recipe = write_recipe(
        tmp_path / "tiny.yaml",
        tokenizer_dir,
        optimisation={"projector_lr": 1e-4, "lora": {"r": 2, "alpha": 4}},
        trainer={
            "max_steps": 3,
            "log_every_n_steps": 1,
            "enable_checkpointing": False,
            "default_root_dir": str(tmp_path / "run"),
            "callbacks": [
                {
                    "class_path": "lightning.pytorch.callbacks.ThroughputMonitor",
                    "init_args": {
                        "batch_size_fn": "lvlm.training.callbacks.batch_size",
                        "length_fn": "lvlm.training.callbacks.batch_tokens",
                        "window_size": 2,
                    },
                },
                {"class_path": "lvlm.training.callbacks.ModalityCounter"},
            ],
        },
    )
    assert fit.main([str(recipe)]) == 0  # `lvlm run RECIPE` is `lvlm fit -c RECIPE`
    (log_dir,) = (tmp_path / "run" / "lightning_logs").iterdir()
    events = EventAccumulator(str(log_dir)).Reload()
    tags = set(events.Tags()["scalars"])
    expected = {"train/loss", "train/grad_norm", "train/lr_main", "train/lr_projector"}
    throughput = {"train/device/samples_per_sec", "train/device/items_per_sec"}  # Lightning's ThroughputMonitor
    assert expected | throughput | {"train/samples_image", "train/samples_video"} <= tags, tags
    lrs = [e.value for e in events.Scalars("train/lr_projector")]
    assert lrs[0] == 0.0 and lrs[1] == pytest.approx(1e-4)  # warmup of one step (ratio 0.25 of 3), then cosine
    assert [e.value for e in events.Scalars("train/samples_video")][-1] == 3.0
    assert (log_dir / "projector.safetensors").is_file() and (log_dir / "config.yaml").is_file()


def test_a_filler_batch_runs_with_zero_loss_and_zero_gradients(tmp_path, tokenizer_dir):
    recipe = write_recipe(
        tmp_path / "tiny.yaml",
        tokenizer_dir,
        optimisation={"train_llm": True},
        trainer={
            "max_steps": 2,
            "log_every_n_steps": 1,
            "default_root_dir": str(tmp_path / "run"),
            "callbacks": [{"class_path": "lvlm.training.callbacks.ModalityCounter"}],
        },
    )
    assert cli.lightning_main("fit", ["-c", str(recipe), "--data.init_args.filler=true"]) == 0
    (log_dir,) = (tmp_path / "run" / "lightning_logs").iterdir()
    events = EventAccumulator(str(log_dir)).Reload()
    tags = set(events.Tags()["scalars"])
    assert not {"train/loss", "train/samples_image", "train/samples_video"} & tags  # no loss, no sample trained
    assert [e.value for e in events.Scalars("train/grad_norm")] == [0.0, 0.0]


def test_stage2_reads_the_stage1_projector(tmp_path, tokenizer_dir):
    stage1 = tmp_path / "stage1.safetensors"
    recipe = write_recipe(
        tmp_path / "s1.yaml", tokenizer_dir, export={"projector": str(stage1)}, trainer={"fast_dev_run": 1}
    )
    cli.lightning_main("fit", ["-c", str(recipe)])
    recipe = write_recipe(
        tmp_path / "s2.yaml",
        tokenizer_dir,
        parts={"projector_checkpoint": str(stage1)},
        optimisation={"train_projector": False, "train_llm": True},
        export={"dir": str(tmp_path / "model")},
        trainer={"fast_dev_run": 1},
    )
    cli.lightning_main("fit", ["-c", str(recipe)])
    model = VideoLLaVA.from_pretrained(tmp_path / "model")
    for key, value in load_file(stage1).items():
        assert torch.equal(model.projector.state_dict()[key], value)


def test_missing_projector_checkpoint_names_the_path(tmp_path, tokenizer_dir):
    recipe = write_recipe(
        tmp_path / "s2.yaml",
        tokenizer_dir,
        parts={"projector_checkpoint": "missing/p.safetensors"},
        trainer={"fast_dev_run": 1},
    )
    with pytest.raises(FileNotFoundError, match="missing/p.safetensors"):
        cli.lightning_main("fit", ["-c", str(recipe)])


def test_saved_settings_rebuild_the_lora_model(tmp_path, tokenizer_dir):
    recipe = write_recipe(
        tmp_path / "tiny.yaml",
        tokenizer_dir,
        optimisation={"lora": {"r": 2, "alpha": 4}},
        trainer={"max_steps": 1, "logger": False, "default_root_dir": str(tmp_path)},
    )
    cli.lightning_main("fit", ["-c", str(recipe)])
    (path,) = (tmp_path / "checkpoints").iterdir()
    checkpoint = torch.load(path, weights_only=True)
    module = rebuild_module(checkpoint["hyper_parameters"], str(path))
    module.configure_model()
    module.load_state_dict(checkpoint["state_dict"])
    saved = checkpoint["state_dict"]
    assert module.state_dict().keys() == saved.keys() and any(".lora_A." in k for k in saved)
    assert all(torch.equal(module.state_dict()[k], v) for k, v in saved.items())


def test_run_without_recipe_prints_usage(capsys):
    assert fit.main([]) == 2
    assert "lvlm fit -c RECIPE.yaml" in capsys.readouterr().out


def test_any_torch_optimizer_named_on_the_command_line_trains(tmp_path, tokenizer_dir):
    recipe = write_recipe(
        tmp_path / "tiny.yaml",
        tokenizer_dir,
        optimisation={"projector_lr": 0.5},
        trainer={"max_steps": 2, "logger": False, "default_root_dir": str(tmp_path)},
    )
    args = ["-c", str(recipe), "--optimizer", "torch.optim.SGD", "--optimizer.lr", "0.05"]
    cli.lightning_main("fit", [*args, "--lr_scheduler", "torch.optim.lr_scheduler.ConstantLR"])
    (path,) = (tmp_path / "checkpoints").iterdir()
    groups = torch.load(path, weights_only=True)["optimizer_states"][0]["param_groups"]
    assert all("momentum" in g and "betas" not in g for g in groups)  # SGD's groups, not AdamW's
    assert {g["name"]: g["initial_lr"] for g in groups} == {"projector": 0.5, "projector_no_decay": 0.5}
