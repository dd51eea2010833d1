"""Preparation in a worker process gives the same prompt as in the server's own process, and the same errors; a
``kill -9`` of ``lvlm serve`` ends its workers too."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import torch

from lvlm.inference.serve_errors import ApiError
from lvlm.inference.serve_media import MediaPolicy
from lvlm.inference.serve_prepare import prepare_job
from lvlm.inference.serve_requests import ServeLimits, parse_request
from lvlm.inference.serve_workers import PreparationPool
from tests.processes import alive, children, command_line, kill_alive
from tests.waiting import wait_until

LVLM = str(Path(sys.executable).with_name("lvlm"))


def test_worker_prepares_as_the_server_does(session, media_dir):
    limits = ServeLimits(MediaPolicy(media_root=media_dir))
    content = [{"type": "text", "text": "describe"}, {"type": "image_url", "image_url": {"url": "red.png"}},
               {"type": "video_url", "video_url": {"url": "right.mp4"}}]  # fmt: skip
    job = parse_request({"model": "m", "messages": [{"role": "user", "content": content}]}, limits)
    broken = parse_request(
        {
            "model": "m",
            "messages": [{"role": "user", "content": [{"type": "video_url", "video_url": {"url": "broken.mp4"}}]}],
        },
        limits,
    )
    pool = PreparationPool(session, limits, processes=1)
    try:
        remote = pool.submit(job, "k").result(timeout=120)
        with pytest.raises(ApiError) as refused:
            pool.submit(broken, "k").result(timeout=120)
    finally:
        pool.close()
    local = prepare_job(session, job, limits, threading.Lock(), "k")
    assert torch.equal(remote.sample.input_ids, local.sample.input_ids) and remote.max_tokens == local.max_tokens
    assert [k for k, _ in remote.sample.media] == [k for k, _ in local.sample.media] == ["videos", "images"]
    assert all(torch.equal(a, b) for (_, a), (_, b) in zip(remote.sample.media, local.sample.media))
    assert (refused.value.status, refused.value.code) == (400, "invalid_media")


def test_a_killed_server_leaves_no_worker_behind(checkpoint_dir):
    """A scheduler's ``kill -9`` (or the out-of-memory killer) of the server process alone: its preparation workers
    (each holds a tokenizer and transforms) and multiprocessing's resource tracker end within seconds."""
    argv = [LVLM, "serve", "--model", str(checkpoint_dir), "--port", "0", "--prepare-workers", "2"]
    env = os.environ | {"HF_HUB_OFFLINE": "1"}
    server = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env)
    helpers: list[int] = []
    try:
        assert "http://" in server.stdout.readline(), "lvlm serve did not start"
        helpers = children(server.pid)
        workers = [pid for pid in helpers if "spawn_main" in command_line(pid)]
        assert len(workers) == 2, helpers
        server.kill()  # the server only, not its process group
        server.wait(timeout=30)
        wait_until(lambda: not any(alive(pid) for pid in helpers), "the workers to end with the server", timeout=30)
    finally:
        kill_alive([server.pid, *helpers])
