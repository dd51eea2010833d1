"""A mistake in a recipe is one line naming the file and the key, before (and instead of) any usage text.

Driven through the installed ``lvlm`` command, as a user meets it; each mistake has the same recipe without it
as its benign twin.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from lvlm.apps.recipe_runner import lightning_main
from lvlm.core.errors import UserError
from tests.training.tiny import write_recipe, write_tokenizer

LVLM = str(Path(sys.executable).with_name("lvlm"))


@pytest.fixture(scope="module")
def good_recipe(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("recipe")
    return write_recipe(root / "good.yaml", write_tokenizer(root / "tokenizer"))


def lvlm_fit(*args: str) -> subprocess.CompletedProcess:
    env = os.environ | {"HF_HUB_OFFLINE": "1", "PYTHONPATH": str(Path(__file__).parents[2])}
    return subprocess.run([LVLM, "fit", *args], capture_output=True, text=True, timeout=300, env=env)


def with_change(good: Path, target: Path, change) -> Path:
    recipe = yaml.safe_load(good.read_text())
    change(recipe)
    target.write_text(yaml.safe_dump(recipe, sort_keys=False))
    return target


def unknown_key(recipe):
    recipe["model"]["learnig_rate"] = 0.1


def wrong_type(recipe):
    recipe["trainer"]["max_steps"] = "three"


def unknown_class(recipe):
    tower = recipe["model"]["parts"]["modalities"]["image"]["init_args"]["tower"]
    tower["class_path"] = "lvlm.models.vision.NoSuchTower"


@pytest.mark.parametrize(
    ("change", "key_and_fault"),
    [
        (unknown_key, "model.learnig_rate: unknown key"),
        (wrong_type, "trainer.max_steps: expected int, got 'three'"),
        (unknown_class, "model.parts.modalities.image.init_args.tower.class_path: no class 'NoSuchTower'"),
    ],
)
def test_a_recipe_mistake_is_one_line_naming_file_and_key(good_recipe, tmp_path, change, key_and_fault):
    bad = with_change(good_recipe, tmp_path / "bad.yaml", change)
    done = lvlm_fit("-c", str(bad), "--print_config")
    assert done.returncode == 2
    first = done.stderr.splitlines()[0]
    assert first.startswith(f"lvlm fit: {bad}: {key_and_fault}"), done.stderr
    assert "usage:" not in done.stderr and "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr


def test_the_key_is_blamed_on_the_last_file_that_sets_it(good_recipe, tmp_path):
    bad = with_change(good_recipe, tmp_path / "bad.yaml", wrong_type)
    fixed = tmp_path / "fix.yaml"
    fixed.write_text("trainer:\n  max_steps: 2\n  log_every_n_step: 1\n")
    done = lvlm_fit("-c", str(bad), "-c", str(fixed), "--print_config")
    # the first file is read and checked first: its wrong type is the error, named in that file
    assert done.stderr.startswith(f"lvlm fit: {bad}: trainer.max_steps:"), done.stderr
    done = lvlm_fit("-c", str(good_recipe), "-c", str(fixed), "--print_config")
    assert done.stderr.startswith(f"lvlm fit: {fixed}: trainer.log_every_n_step: unknown key"), done.stderr


def test_a_missing_recipe_file_is_named(tmp_path):
    done = lvlm_fit("-c", str(tmp_path / "nope.yaml"))
    assert done.returncode == 2
    assert done.stderr.splitlines()[0] == f"lvlm fit: {tmp_path / 'nope.yaml'}: no such recipe file", done.stderr


def test_the_good_recipe_parses(good_recipe):
    done = lvlm_fit("-c", str(good_recipe), "--print_config")
    assert done.returncode == 0, done.stderr
    assert yaml.safe_load(done.stdout)["trainer"]["max_steps"] == 3


def test_a_recipe_that_is_not_yaml_names_its_line(good_recipe, tmp_path):
    broken = tmp_path / "broken.yaml"
    broken.write_text(good_recipe.read_text().replace("max_steps: 3", "max_steps: [3"))
    with pytest.raises(UserError) as refused:
        lightning_main("fit", ["-c", str(broken), "--print_config"])
    assert str(refused.value).startswith(f"{broken}: line "), refused.value
    assert "not valid YAML" in str(refused.value)


def test_no_recipe_names_the_keys_a_recipe_must_set():
    with pytest.raises(UserError) as refused:
        lightning_main("fit", [])
    assert (
        str(refused.value)
        == "command line: model.parts.llm, model.parts.modalities, data: required, but no recipe or override sets them"
    )
