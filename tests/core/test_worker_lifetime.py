"""A worker started for a parent that is already gone ends at once (the kill -9 cases run the real commands:
``tests/inference/test_serve_workers.py`` for spawned workers, ``tests/apps/test_shards.py`` for forked ones)."""

from __future__ import annotations

import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

import pytest

from lvlm.core.worker_lifetime import end_with_parent


def _pid() -> int:
    return os.getpid()


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_a_worker_whose_parent_is_gone_ends_at_once(method):
    context = multiprocessing.get_context(method)
    with ProcessPoolExecutor(1, mp_context=context, initializer=end_with_parent, initargs=(os.getpid(),)) as alive:
        assert alive.submit(_pid).result(timeout=60) != os.getpid()  # its parent is here: it works
    not_ours = os.getppid()  # a pid that is not the worker's parent, as after the parent died and it was adopted
    orphan = ProcessPoolExecutor(1, mp_context=context, initializer=end_with_parent, initargs=(not_ours,))
    with orphan, pytest.raises(BrokenProcessPool):
        orphan.submit(_pid).result(timeout=60)
