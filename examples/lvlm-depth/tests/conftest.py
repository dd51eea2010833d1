"""One tiny depth world, shards, both training stages and an exported model, built once for the plugin's tests.

The tests need the plugin installed (``pip install -e examples/lvlm-depth``, as ``.ci/run`` does); without it
they are skipped, so the README's ``pip install -e ".[test]" && pytest`` still passes.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from depth_cli import argv, lvlm

from lvlm.apps.cli import run_command


@pytest.fixture(scope="session")
def world(tmp_path_factory) -> Path:
    example = pytest.importorskip("lvlm_depth.example", reason="the plugin is not installed")
    world = tmp_path_factory.mktemp("depth") / "depth-run"
    assert example.main(argv("world", world)[1]) == 0
    return world


@pytest.fixture(scope="session")
def shards(world) -> Path:
    done = lvlm(*argv("shards", world)[1])
    assert done.returncode == 0, done.stderr
    return world / "shards"


@pytest.fixture(scope="session")
def model_dir(world, shards) -> Path:
    """Stage 1 (projector) then stage 2 (projector + LLM, exported), with the plugin's recipes."""
    env, stage1 = argv("stage1", world)
    os.environ.update(env)
    try:
        assert run_command(stage1[0], stage1[1:]) == 0
        assert (world / "runs/stage1/projector.safetensors").is_file()
        stage2 = argv("stage2", world)[1]
        assert run_command(stage2[0], stage2[1:]) == 0
    finally:
        for key in env:
            del os.environ[key]
    return world / "model"
