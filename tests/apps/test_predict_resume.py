"""``lvlm predict`` killed with SIGKILL mid-run, then ``--resume``d: the output equals an uninterrupted run's; its
worker processes (``--num-processes``) end with it instead of writing on beside the resumed run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.apps.predict_helpers import lvlm_predict, read_jsonl
from tests.processes import alive, children, command_line, kill_alive
from tests.training.launch import REPO, env
from tests.waiting import wait_until

BATCH, KILL_AFTER = 2, 2  # 8 questions in batches of 2: killed once batches 1 and 2 are on disk


def wait_for(marker, process: subprocess.Popen, timeout: float = 180.0) -> None:
    deadline = time.monotonic() + timeout
    while not marker.exists():
        assert process.poll() is None, "the run ended before it could be killed"
        assert time.monotonic() < deadline, f"no {marker} after {timeout} s"
        time.sleep(0.2)


@pytest.mark.slow
def test_sigkill_then_resume_equals_uninterrupted_run(checkpoint_dir, questions_file, tmp_path, capsys):
    common = ["--model", checkpoint_dir, "--questions", questions_file, "--batch-size", BATCH]
    assert lvlm_predict(*common, "--out", tmp_path / "full.jsonl") == 0

    out, marker = tmp_path / "killed.jsonl", tmp_path / "blocked"
    argv = [str(a) for a in (*common, "--out", out, "--max-new-tokens", 3, "--no-progress")]
    blocker = [sys.executable, str(REPO / "tests" / "apps" / "predict_blocker.py"), str(KILL_AFTER), str(marker)]
    with open(tmp_path / "killed.log", "w") as log:
        victim = subprocess.Popen([*blocker, *argv], cwd=REPO, env=env(), stdout=log, stderr=log)
        try:
            wait_for(marker, victim)
            os.kill(victim.pid, signal.SIGKILL)
            assert victim.wait(timeout=30) == -signal.SIGKILL
        finally:
            if victim.poll() is None:
                victim.kill()
    partial = tmp_path / "killed.jsonl.partial"
    assert not out.exists() and partial.is_dir()  # the final file appears only when the run is complete
    (part,) = partial.glob("rank*.jsonl")
    done = read_jsonl(part)
    # batches 1-2 hold q0, q1, q3, q4 (q2's missing video is skipped on the way); nothing after is on disk
    assert sorted(line["key"] for line in done) == ["q0", "q1", "q2", "q3", "q4"]
    with part.open("a") as f:
        f.write('{"index": 5, "key": "q5", "rec')  # a line torn by a kill in the middle of a write

    assert lvlm_predict(*common, "--out", out) == 2  # the partial run is never silently restarted or mixed
    assert lvlm_predict(*common, "--out", out, "--resume", "--top-p", "0.5") == 2  # other settings
    capsys.readouterr()
    assert lvlm_predict(*common, "--out", out, "--resume") == 0
    assert "resuming: 5 of 8 questions already done" in capsys.readouterr().err  # only q5, q6, q7 are asked
    assert out.read_text() == (tmp_path / "full.jsonl").read_text()
    assert (tmp_path / "killed.skipped.jsonl").read_text() == (tmp_path / "full.skipped.jsonl").read_text()
    assert not partial.exists()


@pytest.mark.slow
def test_the_workers_of_a_killed_run_end_with_it(checkpoint_dir, tmp_path):
    """A ``kill -9`` of the command alone (the out-of-memory killer, ``kill PID``): its spawned workers stop at
    once, so a ``--resume`` started after it is the only process writing the partial folder."""
    total = 1000  # text-only questions: each worker has far more than a few seconds of work
    questions = [{"question_id": f"t{i}", "question": f"answer yes or no {i}", "answer": "yes"} for i in range(total)]
    (tmp_path / "q.json").write_text(json.dumps(questions))
    argv = [sys.executable, "-m", "lvlm", "predict", "--model", str(checkpoint_dir), "--questions",
            str(tmp_path / "q.json"), "--out", str(tmp_path / "p.jsonl"), "--num-processes", "2", "--batch-size", "1",
            "--max-new-tokens", "8", "--no-progress"]  # fmt: skip
    command = subprocess.Popen(argv, cwd=REPO, env=env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    parts = Path(f"{tmp_path / 'p.jsonl'}.partial")
    answered = lambda: sum(len(p.read_text().splitlines()) for p in parts.glob("rank*.jsonl"))  # noqa: E731
    workers: list[int] = []
    try:
        wait_until(lambda: answered() >= 4 or command.poll() is not None, "both workers answering", timeout=180)
        workers = [pid for pid in children(command.pid) if "spawn_main" in command_line(pid)]
        assert command.poll() is None and len(workers) == 2
        command.kill()
        at_kill = answered()
        command.wait(timeout=30)
        wait_until(lambda: not any(alive(pid) for pid in workers), "the workers to end with the command", timeout=20)
        # they stopped within a few answers (about 70 a second each), not at the end of their shares
        assert answered() <= at_kill + 10 < total, (at_kill, answered())
    finally:
        kill_alive([command.pid, *workers])
