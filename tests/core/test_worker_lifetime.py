"""A worker started for a parent that is already gone ends at once; only torchrun's ranks watch their launcher.

The kill -9 cases run the real commands: ``tests/inference/test_serve_workers.py`` (spawned workers),
``tests/apps/test_shards.py`` (forked ones), ``tests/apps/test_predict_resume.py`` (``--num-processes``) and
``tests/apps/user_paths/test_user_paths.py`` (the ranks of a killed torchrun)."""

from __future__ import annotations

import multiprocessing
import os
import threading
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

import pytest

from lvlm.core.worker_lifetime import end_with_launcher, end_with_parent


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


def test_a_process_not_started_by_torchrun_is_left_alone():
    end_with_launcher({"RANK": "0"})  # a shell, nohup or srun: its parent may end while it rightly runs on
    assert "lvlm-end-with-launcher" not in {thread.name for thread in threading.enumerate()}
