"""Preparation in a worker process gives the same prompt as in the server's own process, and the same errors."""

from __future__ import annotations

import threading

import pytest
import torch

from lvlm.inference.serve_errors import ApiError
from lvlm.inference.serve_media import MediaPolicy
from lvlm.inference.serve_prepare import prepare_job
from lvlm.inference.serve_requests import ServeLimits, parse_request
from lvlm.inference.serve_workers import PreparationPool


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
