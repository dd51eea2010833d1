"""Running ``lvlm fit`` as users do (the installed command, in its own process), killing it, and reading what it
wrote: checkpoints, exports and logs."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file

from tests.processes import alive, descendants
from tests.waiting import wait_until

REPO = Path(__file__).resolve().parents[3]
STALL = "tests.apps.user_paths.stall.StallAfterStep"


def env() -> dict[str, str]:
    """The test's environment for the commands, with the repository importable (the stall callback's class)."""
    return os.environ | {
        "HF_HUB_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
        "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
    }


def run(args: list[str], timeout: float = 600, stdin: str | None = None) -> subprocess.CompletedProcess:
    """Run a command to the end; on failure the assertion shows its output's tail."""
    done = subprocess.run(args, env=env(), capture_output=True, text=True, timeout=timeout, input=stdin)
    tail = f"{done.stdout[-3000:]}\n{done.stderr[-5000:]}"
    assert done.returncode == 0, f"{' '.join(args)} failed ({done.returncode}):\n{tail}"
    return done


def stall_callback(marker: Path, step: int) -> dict[str, Any]:
    return {"class_path": STALL, "init_args": {"step": step, "marker": str(marker)}}


def start(args: list[str], log: Path) -> subprocess.Popen:
    """Start a command in a session of its own, so that :func:`kill_when` can kill it and what it started."""
    with open(log, "w") as out:
        return subprocess.Popen(args, env=env(), stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


def kill_when(marker: Path, process: subprocess.Popen, log: Path, timeout: float = 600) -> None:
    """SIGKILL the process group once ``marker`` exists (the run stalls there, its checkpoint written)."""
    deadline = time.monotonic() + timeout
    while not marker.exists():
        assert process.poll() is None, f"the run ended before the kill point:\n{log.read_text()[-4000:]}"
        assert time.monotonic() < deadline, f"no {marker} after {timeout} s"
        time.sleep(0.2)
    # A scheduler's kill -9 takes the whole job: the launcher's group and every rank (torchrun starts each in a
    # session of its own; a rank whose launcher alone is killed stops by itself, test_user_paths checks that).
    job = descendants(process.pid)
    os.killpg(process.pid, signal.SIGKILL)
    for pid in job:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    process.wait(timeout=60)
    wait_until(lambda: not any(alive(pid) for pid in job), "every process of the killed run to exit", 30, 0.1)


def exported_weights(model_dir: Path) -> dict[str, torch.Tensor]:
    return load_file(model_dir / "model.safetensors")


def assert_same_weights(got: Mapping[str, torch.Tensor], expected: Mapping[str, torch.Tensor], atol: float = 1e-6):
    assert sorted(got) == sorted(expected)
    for key in expected:
        torch.testing.assert_close(
            got[key].float(), expected[key].float(), rtol=0, atol=atol, msg=lambda message, key=key: f"{key}: {message}"
        )


def is_plain(value: Any) -> bool:
    """Plain data only: what a checkpoint's settings may hold (no object, class or function)."""
    if value is None or isinstance(value, str | int | float | bool):
        return True
    if isinstance(value, dict):
        return all(isinstance(k, str) and is_plain(v) for k, v in value.items())
    if isinstance(value, list | tuple):
        return all(is_plain(v) for v in value)
    return False


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def python() -> str:
    return sys.executable
