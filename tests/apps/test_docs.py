"""Every command line of docs/cli.md runs: parsed in full by its command (``--print_config``), the --debug
example raises, and the exit statuses are the ones the page gives."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
import yaml

from lvlm.apps.cli import LIGHTNING_COMMANDS, TOOLS, main
from lvlm.core.errors import UserError
from tests.training.tiny import write_recipe

DOC = Path(__file__).parents[2] / "docs" / "cli.md"


def command_lines() -> list[str]:
    blocks = re.findall(r"```bash\n(.*?)```", DOC.read_text(), flags=re.S)
    return [line.strip() for block in blocks for line in block.splitlines() if line.strip().startswith("lvlm ")]


def run_lvlm(argv: list[str]) -> int | str | None:
    with pytest.raises(SystemExit) as done:
        main(argv)
    return done.value.code


@pytest.fixture(scope="module")
def places(tokenizer_dir, checkpoint_dir, tmp_path_factory):
    recipe = write_recipe(tmp_path_factory.mktemp("cli-doc") / "recipe.yaml", tokenizer_dir)
    return {"recipe.yaml": str(recipe), "CKPT": str(checkpoint_dir)}


def test_the_page_shows_every_command():
    shown = {shlex.split(line)[1] for line in command_lines()}
    assert shown == set(TOOLS) | set(LIGHTNING_COMMANDS)


@pytest.mark.parametrize("line", [line for line in command_lines() if "--debug" not in line])
def test_every_command_line_parses_and_prints_its_settings(line, places, capsys):
    argv = [places.get(arg, arg) for arg in shlex.split(line)[1:]]
    if "--print_config" not in argv:
        argv.append("--print_config")
    assert run_lvlm(argv) == 0
    settings = yaml.safe_load(capsys.readouterr().out)
    assert isinstance(settings, dict) and settings
    if "--out" in argv:  # the command line's own values are what it prints
        assert str(settings["out"]).rstrip("/") == argv[argv.index("--out") + 1].rstrip("/")


def test_a_refusal_is_one_line_and_status_2_and_debug_raises_it(capsys):
    (line,) = [line for line in command_lines() if "--debug" in line]
    argv = shlex.split(line)[1:]
    with pytest.raises(UserError, match="--model missing/: no such checkpoint directory"):
        main(argv)
    assert run_lvlm([arg for arg in argv if arg != "--debug"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["lvlm predict: --model missing/: no such checkpoint directory"]


def test_an_unknown_command_is_status_1():
    code = run_lvlm(["nonsense"])
    assert isinstance(code, str) and "unknown command 'nonsense'" in code  # sys.exit(message): status 1
