"""lvlm's layers hold, checked by import-linter (the contracts live in pyproject.toml), and a hidden violation
(an import inside a function) breaks them."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def lint_imports(root: Path) -> subprocess.CompletedProcess:
    command = [str(Path(sys.executable).parent / "lint-imports"), "--config", str(root / "pyproject.toml")]
    return subprocess.run(command, cwd=root, capture_output=True, text=True, env={"PYTHONPATH": str(root)})


def test_every_layer_contract_is_kept():
    result = lint_imports(REPO)
    assert result.returncode == 0, result.stdout[-3000:]
    assert "Contracts: 4 kept, 0 broken." in result.stdout


def lint_with_hidden_import(tmp_path, module: str, statement: str):
    """import-linter over a copy of lvlm where ``module`` (a path under lvlm/) gains ``statement`` in a function."""
    shutil.copytree(REPO / "lvlm", tmp_path / "lvlm", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "pyproject.toml", tmp_path / "pyproject.toml")
    path = tmp_path / "lvlm" / module
    path.write_text(path.read_text() + f"\n\ndef _hidden():\n    {statement}  # noqa: F401\n")
    return lint_imports(tmp_path)


def test_an_import_hidden_in_a_function_breaks_the_layers(tmp_path):
    result = lint_with_hidden_import(tmp_path, "models/fusion.py", "from lvlm.apps import cli")
    assert result.returncode != 0
    assert "BROKEN" in result.stdout and "lvlm.models.fusion -> lvlm.apps.cli" in result.stdout


def test_a_command_importing_another_breaks_their_independence(tmp_path):
    """``lvlm eval --model`` once ran ``lvlm predict``'s app object; commands share library functions instead."""
    result = lint_with_hidden_import(tmp_path, "apps/eval.py", "from lvlm.apps import predict")
    assert result.returncode != 0
    assert "lvlm commands do not import each other" in result.stdout and "BROKEN" in result.stdout
    assert "lvlm.apps.eval -> lvlm.apps.predict" in result.stdout
