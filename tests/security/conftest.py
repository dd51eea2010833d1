"""Fixtures of the security tests: a marker path and the tiny tokenizer.

The security tests are cross-cutting by design, so they do not mirror one package: each threat (pickled code in
a checkpoint, remote code, class paths in a recipe, checkpoint paths) is tested through every command and library
entry point it could reach, in one place.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from lvlm.apps.recipe_runner import lightning_main
from tests.training.tiny import write_recipe, write_tokenizer


@pytest.fixture
def marker(tmp_path) -> Path:
    """The file a payload creates if its code runs; every test asserts it never appears."""
    path = tmp_path / "PAYLOAD_RAN"
    yield path
    assert not path.exists(), "a payload's code ran"


@pytest.fixture(scope="session")
def tokenizer_dir(tmp_path_factory) -> Path:
    return write_tokenizer(tmp_path_factory.mktemp("tokenizer"))


@pytest.fixture(scope="session")
def run_checkpoint(tmp_path_factory):
    """A real Lightning checkpoint of a tiny fit (one step, LoRA so merge-lora applies too) and its recipe."""
    root = tmp_path_factory.mktemp("run")
    tokenizer_dir = write_tokenizer(root / "tokenizer")
    trainer = {"max_steps": 1, "logger": False, "default_root_dir": str(root)}
    recipe = write_recipe(
        root / "tiny.yaml", tokenizer_dir, optimisation={"lora": {"r": 2, "alpha": 4}}, trainer=trainer
    )
    lightning_main("fit", ["-c", str(recipe)])
    (path,) = (root / "checkpoints").iterdir()
    return path, recipe
