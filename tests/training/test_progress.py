"""The fit progress bar shows real counts (never Lightning's ``Epoch 0/-2`` for a run bounded by max_steps), and
no message the user cannot act on is printed; a run laid out as the recipes lay it out keeps its checkpoints beside
its TensorBoard folder, not in it, and the bar shows no ``v_num``."""

from __future__ import annotations

import subprocess
import sys

import lightning.pytorch as pl
import pytest
import yaml
from lightning.pytorch.loggers import TensorBoardLogger

from lvlm.training.progress import StepProgressBar
from tests.training.launch import REPO, env
from tests.training.tiny import write_recipe

RECIPES = REPO / "recipes"


def test_step_bounded_fit_shows_real_counts_and_no_noise(tmp_path, tokenizer_dir):
    trainer = {"max_steps": 2, "enable_progress_bar": True, "logger": False, "enable_checkpointing": False}
    trainer["default_root_dir"] = str(tmp_path)  # the saved config.yaml goes there, not into the repository
    recipe = write_recipe(tmp_path / "tiny.yaml", tokenizer_dir, trainer=trainer)
    command = [sys.executable, "-m", "lvlm", "fit", "-c", str(recipe)]
    result = subprocess.run(command, cwd=REPO, env=env() | {"COLUMNS": "200"}, capture_output=True, text=True)
    shown = result.stdout + result.stderr
    assert result.returncode == 0, shown[-3000:]
    assert "Epoch 0" in shown and "/-" not in shown and "2/2" in shown
    for noise in (
        "Tip:",
        "module(s) in eval mode",
        "LeafSpec",
        "`IterableDataset` has `__len__`",
        "Deprecat",
        "args parameter",
    ):
        assert noise not in shown, noise


@pytest.mark.parametrize(
    "recipe", ["quickstart/stage1.yaml", "quickstart/stage2.yaml", "pretrain.yaml", "finetune.yaml"]
)
def test_a_recipe_run_keeps_checkpoints_beside_its_tensorboard_folder(recipe, tmp_path, tokenizer_dir):
    if recipe != "quickstart/stage1.yaml":  # one real run; the other recipes must share its logger settings
        ours, theirs = (
            yaml.safe_load((RECIPES / r).read_text())["trainer"] for r in ("quickstart/stage1.yaml", recipe)
        )
        assert {**theirs["logger"]["init_args"], "save_dir": None} == {**ours["logger"]["init_args"], "save_dir": None}
        assert theirs["logger"]["init_args"]["save_dir"] == theirs["default_root_dir"]
        return
    logger = yaml.safe_load((RECIPES / recipe).read_text())["trainer"]["logger"]
    logger["init_args"]["save_dir"] = str(tmp_path)
    trainer = {"max_steps": 2, "enable_progress_bar": True, "logger": logger, "default_root_dir": str(tmp_path)}
    recipe_file = write_recipe(tmp_path / "tiny.yaml", tokenizer_dir, trainer=trainer)
    command = [sys.executable, "-m", "lvlm", "fit", "-c", str(recipe_file)]
    result = subprocess.run(command, cwd=REPO, env=env() | {"COLUMNS": "200"}, capture_output=True, text=True)
    shown = result.stdout + result.stderr
    assert result.returncode == 0, shown[-3000:]
    assert [p.name for p in (tmp_path / "checkpoints").iterdir()] == ["epoch=0-step=2.ckpt"]
    logs = tmp_path / "tensorboard"
    assert list(logs.glob("events.out.tfevents.*")) and (logs / "config.yaml").is_file()
    assert not (logs / "checkpoints").exists()
    assert "v_num" not in shown and "2/2" in shown


@pytest.mark.parametrize(("version", "shown"), [("tensorboard", None), (3, 3)])
def test_the_bar_shows_a_version_number_only(version, shown, tmp_path):
    trainer = pl.Trainer(logger=TensorBoardLogger(tmp_path, name="", version=version), enable_progress_bar=False)
    assert StepProgressBar().get_metrics(trainer, None).get("v_num") == shown
