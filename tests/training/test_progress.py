"""The fit progress bar shows real counts (never Lightning's ``Epoch 0/-2`` for a run bounded by max_steps), and
no message the user cannot act on is printed."""

from __future__ import annotations

import subprocess
import sys

from tests.training.launch import REPO, env
from tests.training.tiny import write_recipe


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
