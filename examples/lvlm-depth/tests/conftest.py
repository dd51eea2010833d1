"""One tiny depth world, shards, both training stages and an exported model, built once for the plugin's tests.

The tests need the plugin installed (``pip install -e examples/lvlm-depth``, as ``.ci/run`` does); without it
they are skipped, so the README's ``pip install -e ".[test]" && pytest`` still passes.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from depth_cli import lvlm

from lvlm.apps.cli import run_command

RECIPES = Path(__file__).resolve().parents[1] / "recipes"


@pytest.fixture(scope="session")
def world(tmp_path_factory) -> Path:
    example = pytest.importorskip("lvlm_depth.example", reason="the plugin is not installed")
    return example.write_world(tmp_path_factory.mktemp("depth") / "depth-run")


@pytest.fixture(scope="session")
def shards(world) -> Path:
    done = lvlm(
        "shards", str(world / "depth.json"), "--folder", f"depth={world / 'depths'}", "--out", str(world / "shards")
    )
    assert done.returncode == 0, done.stderr
    return world / "shards"


@pytest.fixture(scope="session")
def model_dir(world, shards) -> Path:
    """Stage 1 (projector) then stage 2 (projector + LLM, exported), with the plugin's recipes."""
    os.environ["LVLM_DEPTH"] = str(world)
    try:
        assert run_command("fit", ["-c", str(RECIPES / "stage1.yaml")]) == 0
        assert (world / "runs/stage1/projector.safetensors").is_file()
        assert run_command("fit", ["-c", str(RECIPES / "stage1.yaml"), "-c", str(RECIPES / "stage2.yaml")]) == 0
    finally:
        del os.environ["LVLM_DEPTH"]
    return world / "model"
