"""Helpers of the ``lvlm predict`` tests: run the command in process, read its JSONL outputs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lvlm.apps.cli import main as lvlm_main


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines()]


def lvlm_predict(*argv: str, progress: bool = False) -> int:
    """``lvlm predict ARGV`` through the ``lvlm`` entry point; returns its exit status."""
    quiet = [] if progress else ["--no-progress"]
    with pytest.raises(SystemExit) as done:
        lvlm_main(["predict", *map(str, argv), "--max-new-tokens", "3", *quiet])
    return done.value.code
