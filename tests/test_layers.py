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


def test_an_import_hidden_in_a_function_breaks_the_layers(tmp_path):
    shutil.copytree(REPO / "lvlm", tmp_path / "lvlm", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "pyproject.toml", tmp_path / "pyproject.toml")
    fusion = tmp_path / "lvlm" / "models" / "fusion.py"
    fusion.write_text(fusion.read_text() + "\n\ndef _sneaky():\n    from lvlm.apps import cli  # noqa: F401\n")
    result = lint_imports(tmp_path)
    assert result.returncode != 0
    assert "BROKEN" in result.stdout and "lvlm.models.fusion -> lvlm.apps.cli" in result.stdout


def test_a_command_importing_another_breaks_their_independence(tmp_path):
    """``lvlm eval --model`` once ran ``lvlm predict``'s app object; commands share library functions instead."""
    shutil.copytree(REPO / "lvlm", tmp_path / "lvlm", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "pyproject.toml", tmp_path / "pyproject.toml")
    evaluate = tmp_path / "lvlm" / "apps" / "eval.py"
    evaluate.write_text(evaluate.read_text() + "\n\ndef _predict():\n    from lvlm.apps import predict  # noqa: F401\n")
    result = lint_imports(tmp_path)
    assert result.returncode != 0
    assert "lvlm commands do not import each other" in result.stdout and "BROKEN" in result.stdout
    assert "lvlm.apps.eval -> lvlm.apps.predict" in result.stdout
