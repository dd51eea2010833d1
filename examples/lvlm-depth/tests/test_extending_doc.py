"""docs/extending.md shows only commands the plugin's tests run (``depth_cli.COMMANDS``), and all of them."""

from __future__ import annotations

import re
from pathlib import Path

from depth_cli import COMMANDS, PLUGIN

ROOT = PLUGIN.parents[1]


def doc_commands() -> list[str]:
    text = (ROOT / "docs" / "extending.md").read_text()
    blocks = re.findall(r"```bash\n(.*?)```", text, flags=re.S)
    return [line.strip() for block in blocks for line in block.splitlines() if line.strip()]


def test_every_command_of_the_doc_is_run_by_a_test():
    shown = doc_commands()
    assert len(shown) == len(COMMANDS) == 9
    assert set(shown) == set(COMMANDS.values())


def test_ci_installs_the_plugin_as_the_doc_says():
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    assert COMMANDS["install"] in ci
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert re.search(r'testpaths = \[.*"examples/lvlm-depth/tests"', pyproject)


def test_the_doc_names_the_entry_points_the_plugin_declares():
    declared = (PLUGIN / "pyproject.toml").read_text()
    text = (ROOT / "docs" / "extending.md").read_text()
    for line in ('depth = "lvlm_depth.modality:DepthModality"', 'depth = "lvlm_depth.tower:DepthTower"'):
        assert line in declared and line in text
    assert Path(PLUGIN / "recipes" / "stage1.yaml").is_file()
