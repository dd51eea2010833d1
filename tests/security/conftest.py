"""Fixtures of the security tests: the real ``lvlm`` command in-process, a marker path, a tiny run."""

from __future__ import annotations

from pathlib import Path

import pytest

from lvlm.apps.cli import main as cli_main
from tests.training.tiny import write_tokenizer


def lvlm(capsys, *argv: str | Path) -> tuple[int, str]:
    """Run ``lvlm ARGV`` as the console script does; returns its exit code and what it printed."""
    capsys.readouterr()
    try:
        cli_main([str(arg) for arg in argv])
        code = 0
    except SystemExit as exit_:
        code = exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 1)
    captured = capsys.readouterr()
    return code, captured.out + captured.err


@pytest.fixture
def marker(tmp_path) -> Path:
    """The file a payload creates if its code runs; every test asserts it never appears."""
    path = tmp_path / "PAYLOAD_RAN"
    yield path
    assert not path.exists(), "a payload's code ran"


@pytest.fixture(scope="session")
def tokenizer_dir(tmp_path_factory) -> Path:
    return write_tokenizer(tmp_path_factory.mktemp("tokenizer"))
