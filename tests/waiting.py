"""Waiting for something another thread or process does, by its effect rather than by a clock."""

from __future__ import annotations

import time
from collections.abc import Callable


def wait_until(condition: Callable[[], object], what: str, timeout: float = 60.0, poll_s: float = 0.001) -> None:
    """Poll ``condition`` until it holds; fail naming ``what`` after a deadline no healthy run comes near."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"waited {timeout} s for {what}"
        time.sleep(poll_s)
