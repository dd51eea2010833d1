"""Worker processes (and ``torchrun`` ranks) that end with the process that started them, however it ends
(``kill -9`` included).

A ``ProcessPoolExecutor`` worker waits for its next task on a queue whose write end it holds itself (a queue
travels to a worker whole), so it never reads end-of-file when its parent dies: a ``kill -9`` of ``lvlm serve``
or ``lvlm shards`` would leave its workers waiting for ever, each holding its memory (a serve worker holds a
tokenizer and transforms: about 0.8 GB), and the workers ``lvlm predict --num-processes`` spawns would go on
answering and appending to the partial folder beside a ``--resume``d run. :func:`end_with_parent`, called first in a
worker's initializer, starts a daemon thread that waits on multiprocessing's parent sentinel (a pipe only the parent
holds open, closed by the kernel when the parent exits) and ends the worker at once. It does not depend on which
thread of the parent started the worker, unlike Linux's ``PR_SET_PDEATHSIG``, which fires when that *thread* ends (a
server starts workers from whichever thread submits first), and it works on any platform multiprocessing runs on.
"""

from __future__ import annotations

import multiprocessing
import os
import sys
import threading
import time
from collections.abc import Mapping
from multiprocessing.connection import wait

EXIT_STATUS = 1  # a worker whose parent is gone did not finish its work
LAUNCHER_POLL_S = 0.5


def end_with_parent(parent: int) -> None:
    """End this worker process as soon as its parent (pid ``parent``, read by the parent before starting it)
    exits; a parent already gone ends it now."""
    watched = multiprocessing.parent_process()
    if os.getppid() != parent or watched is None or not watched.is_alive():
        os._exit(EXIT_STATUS)
    sentinel = watched.sentinel
    threading.Thread(target=_exit_after, args=(sentinel,), name="lvlm-end-with-parent", daemon=True).start()


def _exit_after(sentinel: int) -> None:
    wait([sentinel])
    os._exit(EXIT_STATUS)


def end_with_launcher(environ: Mapping[str, str] = os.environ) -> None:
    """Under ``torchrun`` (``TORCHELASTIC_RUN_ID`` set), end this rank soon after its launcher process is gone.

    torchrun starts every rank in a session of its own, so a ``kill -9`` of the launcher alone (``kill PID``, the
    out-of-memory killer) reaches no rank: they would train on (or answer on) and write checkpoints into the run
    folder beside the run a user resumes there. A rank started another way (a shell, ``nohup``, Slurm's ``srun``)
    is left alone: its parent may end while it rightly runs on."""
    if "TORCHELASTIC_RUN_ID" not in environ:
        return
    launcher = os.getppid()
    threading.Thread(target=_exit_when_adopted, args=(launcher,), name="lvlm-end-with-launcher", daemon=True).start()


def _exit_when_adopted(launcher: int) -> None:
    while os.getppid() == launcher:
        time.sleep(LAUNCHER_POLL_S)
    rank = os.environ.get("RANK", "?")
    print(f"lvlm: rank {rank}: torchrun (pid {launcher}) is gone; stopping here", file=sys.stderr, flush=True)
    os._exit(EXIT_STATUS)
