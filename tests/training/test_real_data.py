"""`lvlm fit`, `validate`, `test` and `predict -c` with the real LVLMDataModule on a tiny synthetic world.

Checks the model → data links with the real data module: it receives the module's tokenizer object and
the model's modalities (tokens per item, size, normalisation), and its batches fit the model.
"""

from __future__ import annotations

import pytest
import yaml

from lvlm.apps import recipe_runner as cli
from lvlm.data.synthetic import write_synthetic_world
from lvlm.data.tokenizer_training import train_tokenizer
from tests.training.tiny import tiny_model_args

SIZES = {"stage1_train": 8, "stage2_train": 8, "stage2_val": 4, "stage2_test": 4, "samples_per_shard": 4}


@pytest.fixture(scope="module")
def world_recipe(tmp_path_factory):
    root = tmp_path_factory.mktemp("world")
    world = write_synthetic_world(root / "world", seed=0, sizes=SIZES)
    tokenizer = train_tokenizer(world.corpus_path.read_text().splitlines(), vocab_size=400)
    tokenizer.save_pretrained(root / "tokenizer")
    llm = tiny_model_args(root / "tokenizer")["parts"]["llm"]
    llm["init_args"]["config"] |= {"vocab_size": len(tokenizer), "max_position_embeddings": 1024}
    model = tiny_model_args(root / "tokenizer", parts={"llm": llm}, optimisation={"train_llm": True}, max_new_tokens=3)
    model["parts"]["modalities"]["image"]["init_args"]["image_mode"] = "pad"
    recipe = {
        "trainer": {"accelerator": "cpu", "devices": 1, "enable_progress_bar": False, "default_root_dir": str(root)},
        "model": model,
        "data": {
            "class_path": "lvlm.data.datamodule.LVLMDataModule",
            "init_args": {
                "sources": {
                    "train": [{"pattern": str(root / "world/stage2/train-*.tar"), "weight": 1.0}],
                    "val": [{"pattern": str(root / "world/stage2/val-*.tar")}],
                    "test": [{"pattern": str(root / "world/stage2/test-*.tar")}],
                },
                "sampling": {"batches_per_epoch": 2},
                "media": {"num_frames": 3},
                "loader": {"batch_size": 2},
                "max_length": 512,
            },
        },
    }
    path = root / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe))
    return path


def test_fit_validate_predict_with_the_real_data_module(world_recipe, tmp_path):
    assert cli.lightning_main("fit", ["-c", str(world_recipe), "--trainer.fast_dev_run=1"]) == 0
    assert cli.lightning_main("validate", ["-c", str(world_recipe), "--trainer.limit_val_batches=1"]) == 0
    assert cli.lightning_main("test", ["-c", str(world_recipe), "--trainer.limit_test_batches=1"]) == 0
    assert cli.lightning_main("predict", ["-c", str(world_recipe), "--trainer.limit_predict_batches=1"]) == 0
    built = cli.build_cli(["-c", str(world_recipe), "--trainer.limit_predict_batches=1"], run=False)
    data, model = built.datamodule, built.model
    assert data.tokenizer is model.tokenizer  # linked at instantiation, placeholders included
    assert {m.name: m for m in data.modalities} == model.modalities  # the model's own objects, linked
    image, video = model.modalities["image"], model.modalities["video"]
    assert (image.num_tokens(1), video.num_tokens(1)) == (4, 5)
    assert (image.tower_facts.preprocessing.size, image.image_mode) == (28, "pad")
    predictions = built.trainer.predict(model, datamodule=data)
    assert len(predictions) == 1 and len(predictions[0]) == 2 and {"key", "text"} <= set(predictions[0][0])


def test_fit_on_packed_batches(world_recipe, tmp_path):
    """`data.init_args.loader.max_tokens_per_batch`: one-row batches with position ids reach the model."""
    args = ["-c", str(world_recipe), "--trainer.max_steps=2", f"--trainer.default_root_dir={tmp_path}"]
    built = cli.build_cli([*args, "--data.init_args.loader.max_tokens_per_batch=1024"], run=False)
    batch = next(iter(built.datamodule.train_dataloader()))
    assert batch["input_ids"].shape[0] == 1 and len(batch["keys"]) > 1 and "attention_mask" not in batch
    built.trainer.fit(built.model, datamodule=built.datamodule)
    assert built.trainer.global_step == 2 and bool(built.trainer.callback_metrics["train/loss"].isfinite())


def test_fit_one_epoch_of_the_packed_single_pass(world_recipe, tmp_path):
    """`sampling: single_pass` with `max_tokens_per_batch`: one epoch trains every sample once, in packed rows."""
    args = ["-c", str(world_recipe), "--trainer.max_epochs=1", f"--trainer.default_root_dir={tmp_path}"]
    # a group as a dict merges into the recipe's; jsonargparse 4.53 reads `--data.init_args.sampling.X=null` as 'None'
    packed = ["--data.init_args.sampling={mode: single_pass, batches_per_epoch: null}"]
    built = cli.build_cli([*args, *packed, "--data.init_args.loader.max_tokens_per_batch=1024"], run=False)
    rows = list(built.datamodule.train_dataloader())
    assert sum(len(b["keys"]) for b in rows) == SIZES["stage2_train"] and len(rows) < SIZES["stage2_train"]
    built.trainer.fit(built.model, datamodule=built.datamodule)
    assert built.trainer.global_step == len(rows) and bool(built.trainer.callback_metrics["train/loss"].isfinite())
