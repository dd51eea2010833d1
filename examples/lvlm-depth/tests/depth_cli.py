"""The commands docs/extending.md shows, and how the tests run them (the same words, paths swapped).

``COMMANDS`` holds each command exactly as the doc writes it (``depth-run`` is the world's folder); the tests
build their argument lists from it with :func:`argv`, and ``test_extending_doc`` checks that every command
of the doc is one of these, so each command the doc shows is the one a test runs.
"""

from __future__ import annotations

import shlex
import subprocess
import sys
from pathlib import Path

PLUGIN = Path(__file__).resolve().parents[1]
COMMANDS = {
    "install": "pip install -e examples/lvlm-depth",
    "world": "python -m lvlm_depth.example depth-run",
    "shards": "lvlm shards depth-run/depth.json --folder depth=depth-run/depths --out depth-run/shards",
    "stage1": "LVLM_DEPTH=depth-run lvlm fit -c examples/lvlm-depth/recipes/stage1.yaml",
    "stage2": "LVLM_DEPTH=depth-run lvlm fit -c examples/lvlm-depth/recipes/stage1.yaml "
    "-c examples/lvlm-depth/recipes/stage2.yaml",
    "predict": "lvlm predict --model depth-run/model --questions depth-run/questions.json "
    "--out depth-run/predictions.jsonl",
    "chat": "lvlm chat --model depth-run/model --media depth=depth-run/depths/d016.png",
    "eval": "lvlm eval vqa --model depth-run/model --questions-json depth-run/questions.json "
    "--annotations depth-run/answers.json --out depth-run/eval",
    "convert": "lvlm convert --model depth-run/model --out depth-run/model-copy",
}


def argv(name: str, world: Path) -> tuple[dict[str, str], list[str]]:
    """``(environment, arguments after the program)`` of a doc command, its paths made to point at ``world``."""
    env, words = {}, []
    for word in shlex.split(COMMANDS[name]):
        word = word.replace("examples/lvlm-depth", str(PLUGIN)).replace("depth-run", str(world))
        if not words and "=" in word and word.split("=")[0].isupper():
            key, value = word.split("=", 1)
            env[key] = value
        else:
            words.append(word)
    program = 3 if words[:2] == ["python", "-m"] else 1
    return env, words[program:]


def lvlm(*args: str, **kwargs) -> subprocess.CompletedProcess:
    """``lvlm ARGS`` in a new Python process (``python -m lvlm`` is the ``lvlm`` command)."""
    command = [sys.executable, "-m", "lvlm", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=300, **kwargs)
