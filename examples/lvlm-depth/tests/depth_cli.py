"""Run the ``lvlm`` command as a user would: a new process, the plugin found through its entry points."""

from __future__ import annotations

import subprocess
import sys


def lvlm(*args: str, **kwargs) -> subprocess.CompletedProcess:
    """``lvlm ARGS`` in a new Python process (``python -m lvlm`` is the ``lvlm`` command)."""
    command = [sys.executable, "-m", "lvlm", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=300, **kwargs)
