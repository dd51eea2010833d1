"""The `lvlm` command: help, version, the recipe hint, and `python -m lvlm`."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from lvlm.apps.cli import LIGHTNING_COMMANDS, TOOLS, main, run_command
from lvlm.core.errors import UserError


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(args, capture_output=True, text=True, timeout=120)


def test_help_lists_every_command(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    for name in [*LIGHTNING_COMMANDS, *TOOLS]:
        assert f"  {name} " in out


def test_a_recipe_alone_prints_the_right_form():
    with pytest.raises(SystemExit) as exit_:
        main(["recipes/finetune.yaml"])
    assert "lvlm fit -c recipes/finetune.yaml" in str(exit_.value.code)


def test_unknown_command_fails_with_usage():
    with pytest.raises(SystemExit) as exit_:
        main(["frobnicate"])
    assert "unknown command 'frobnicate'" in str(exit_.value.code)


def test_console_script_and_module_agree():
    script = shutil.which("lvlm")
    assert script is not None, "the lvlm console script is not installed (pip install -e .)"
    lightning = shutil.which("lightning")  # lvlm must never install a command of that name
    assert lightning is None or "lvlm" not in Path(lightning).read_text(errors="replace")
    from_script = run(script, "--version")
    from_module = run(sys.executable, "-m", "lvlm", "--version")
    assert from_script.returncode == from_module.returncode == 0
    assert from_script.stdout == from_module.stdout and from_script.stdout.startswith("lvlm ")


def test_predict_without_recipe_is_batched_generation(tmp_path):
    """``lvlm predict`` without ``-c`` is ``lvlm predict``'s own command (it names its --model), not Lightning's."""
    with pytest.raises(UserError, match="--model .*missing: no such checkpoint directory"):
        run_command("predict", ["--model", str(tmp_path / "missing"), "--questions", "q.json", "--out", "p.jsonl"])
