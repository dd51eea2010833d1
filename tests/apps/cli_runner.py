"""The real ``lvlm`` command, run in-process as its console script runs it (for tests of exit codes and messages)."""

from __future__ import annotations

from pathlib import Path

from lvlm.apps.cli import main as cli_main


def lvlm(capsys, *argv: str | Path) -> tuple[int, str]:
    """Run ``lvlm ARGV``; returns its exit code and what it printed (stdout then stderr)."""
    capsys.readouterr()
    try:
        cli_main([str(arg) for arg in argv])
        code = 0
    except SystemExit as exit_:
        code = exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 1)
    captured = capsys.readouterr()
    return code, captured.out + captured.err
