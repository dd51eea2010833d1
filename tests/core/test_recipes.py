"""The recipes are package data: found through ``importlib.resources``, carried by the wheel, and no module of lvlm
looks for them (or anything else) relative to the source tree."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

import lvlm
from lvlm.core.errors import UserError
from lvlm.core.recipes import packaged_recipe, recipe_names, recipe_summary, recipes_root

PACKAGE = Path(lvlm.__file__).parent
REPO = PACKAGE.parent
FILES = sorted(path.relative_to(PACKAGE / "recipes").as_posix() for path in (PACKAGE / "recipes").rglob("*"))
FILES = [name for name in FILES if (PACKAGE / "recipes" / name).is_file()]


def test_the_catalog_is_the_package_folder():
    assert recipes_root() == PACKAGE / "recipes"
    assert recipe_names() == FILES
    assert {"finetune.yaml", "pretrain.yaml", "quickstart/stage1.yaml", "slurm/train.sbatch"} <= set(FILES)
    assert packaged_recipe("quickstart") == PACKAGE / "recipes" / "quickstart"
    assert packaged_recipe(".") == PACKAGE / "recipes"


def test_a_checkout_reaches_the_same_files_through_its_recipes_link():
    link = REPO / "recipes"
    assert link.is_symlink() and Path(link.readlink()) == Path("lvlm/recipes")  # relative: survives a clone
    assert sorted(p.relative_to(link).as_posix() for p in link.rglob("*") if p.is_file()) == FILES


@pytest.mark.parametrize("name", ["missing.yaml", "../core", "quickstart/../../apps"])
def test_names_outside_the_recipes_are_refused(name):
    with pytest.raises(UserError, match=rf"^no packaged recipe {re.escape(repr(name))}; `lvlm recipes` lists them$"):
        packaged_recipe(name)


def test_the_summary_is_the_first_header_line(tmp_path):
    script = tmp_path / "run.sh"
    script.write_text("#!/bin/bash\n# Runs things.\n# More.\necho\n")
    bare = tmp_path / "bare.yaml"
    bare.write_text("trainer:\n  devices: 1\n# not a header\n")
    assert (recipe_summary(script), recipe_summary(bare)) == ("Runs things.", "")


def test_no_module_looks_for_files_relative_to_the_source_tree():
    """A wheel install has no checkout around the package: data is read through importlib.resources."""
    source_tree = re.compile(r"__file__|parents\[\d+\]\s*/\s*[\"']recipes")
    offenders = [
        str(path.relative_to(REPO))
        for path in sorted(PACKAGE.rglob("*.py"))
        if source_tree.search(path.read_text(encoding="utf-8"))
    ]
    assert offenders == []


@pytest.mark.slow
def test_the_wheel_carries_every_recipe(tmp_path):
    """``pip wheel`` of a copy of the project (the build writes build/ and *.egg-info beside its sources).

    Without build isolation (no download): the environment's setuptools builds it (torch requires one >= 77).
    """
    source = tmp_path / "source"
    shutil.copytree(PACKAGE, source / "lvlm", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("setup.cfg", "pyproject.toml", "README.md"):
        shutil.copy(REPO / name, source / name)
    command = [sys.executable, "-m", "pip", "wheel", str(source), "--no-deps", "--no-build-isolation", "-w", "dist"]
    done = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    (wheel,) = (tmp_path / "dist").glob("lvlm-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert {f"lvlm/recipes/{name}" for name in FILES} <= names
    assert {"lvlm/py.typed", "lvlm/core/recipes.py", "lvlm/apps/recipes.py"} <= names
    assert not any(name.startswith("recipes/") for name in names)
