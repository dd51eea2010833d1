"""Conversion workers: results in input order, and a worker killed mid-batch (as the OOM killer would) loses nothing."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

from media_fixtures import make_media_dir

from lvlm.data.conversion_pool import ConversionPool, ordered_outcomes
from lvlm.data.records import load_records
from lvlm.data.shards import SkippedSample, convert_safely


def records_and_options(tmp_path: Path, count: int) -> tuple[list, dict]:
    media = make_media_dir(tmp_path / "media")
    turns = [{"from": "human", "value": "<video>\nx"}, {"from": "gpt", "value": "y"}]
    items = [{"id": f"r{i}", "video": "v8.mp4" if i % 3 else "gone.mp4", "conversations": turns} for i in range(count)]
    (media / "data.json").write_text(json.dumps(items))
    options = {"image_folder": media / "images", "video_folder": media / "videos", "reencode": None, "frames": 8}
    return load_records([media / "data.json"]), options


def expected(records: list, options: dict) -> list:
    return [convert_safely(r.value, r.key, **options) for r in records]


def same(a: object, b: object) -> bool:
    if isinstance(a, SkippedSample) and isinstance(b, SkippedSample):
        return (a.reason, a.detail) == (b.reason, b.detail)
    return a == b


def test_outcomes_come_back_in_input_order(tmp_path):
    records, options = records_and_options(tmp_path, 20)
    got = list(ordered_outcomes(records, options, workers=2, batch=3))
    assert [r.key for r, _ in got] == [r.key for r in records]
    assert all(same(a, b) for (_, a), b in zip(got, expected(records, options)))
    assert sum(isinstance(o, SkippedSample) for _, o in got) == 7  # r0, r3, ... name a missing video


def test_a_worker_killed_mid_batch_is_replaced_and_the_batch_run_again(tmp_path):
    records, options = records_and_options(tmp_path, 40)
    items = [(r.value, r.key) for r in records]
    pool = ConversionPool(2, options)
    try:
        future = pool.submit(items)
        while not pool.pool._processes:  # noqa: SLF001 - started by submit
            time.sleep(0.001)
        for pid in list(pool.pool._processes):  # noqa: SLF001 - the pool's own workers, killed as the OOM killer would
            os.kill(pid, signal.SIGKILL)
        outcomes = pool.result(items, future)
        assert type(future.exception()).__name__ == "BrokenProcessPool"  # the kill hit the batch in flight
        assert all(same(a, b) for a, b in zip(outcomes, expected(records, options), strict=True))
        again = pool.submit(items[:2])  # the replaced pool keeps working
        assert all(same(a, b) for a, b in zip(pool.result(items[:2], again), expected(records[:2], options)))
    finally:
        pool.close()
