"""Request preparation in worker processes, away from the thread that runs the model.

Decoding a video, resizing frames and tokenizing are Python-heavy; in threads of the server's process they hold
the interpreter lock between torch calls, and every decoding step of the scheduler (hundreds of small torch
calls, each giving the lock up and taking it back) then waits behind them. Worker processes have their own
interpreter: they get a copy of the session without its model (tokenizer, template, media slots, transforms:
all a prompt needs) and send back the prepared prompt.
"""

from __future__ import annotations

import dataclasses
import multiprocessing
import os
import signal
import threading
from concurrent.futures import Future, ProcessPoolExecutor

import torch

from lvlm.core.worker_lifetime import end_with_parent
from lvlm.inference.serve_prepare import PreparedPrompt, prepare_job
from lvlm.inference.serve_requests import ChatJob, ServeLimits
from lvlm.inference.session import InferenceSession

_worker: dict[str, object] = {}


class PreparationPool:
    """``processes`` spawned workers that turn validated requests into prompts.

    Args:
        session: the loaded checkpoint (its model is not sent to the workers).
        limits: request limits and media policy.
        processes: worker processes.
    """

    def __init__(self, session: InferenceSession, limits: ServeLimits, processes: int = 1) -> None:
        light = dataclasses.replace(session, model=None, _transforms={})
        context = multiprocessing.get_context("spawn")  # never fork a process that runs threads
        setup = (light, limits, os.getpid())
        self._pool = ProcessPoolExecutor(processes, mp_context=context, initializer=_start, initargs=setup)
        for ready in [self._pool.submit(_ready) for _ in range(processes)]:
            ready.result()  # started now, so the first request does not wait for a worker to import torch

    def submit(self, job: ChatJob, key: str) -> Future:
        """Prepare one request; the future gives a :class:`PreparedPrompt` or raises its ``ApiError``."""
        return self._pool.submit(_prepare, job, key)

    def close(self) -> None:
        self._pool.shutdown(cancel_futures=True)


def _start(session: InferenceSession, limits: ServeLimits, server: int) -> None:
    end_with_parent(server)  # a kill -9 of the server ends its workers too
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole process group; the server stops us
    torch.set_num_threads(1)
    _worker.update(session=session, limits=limits, lock=threading.Lock())


def _ready() -> bool:
    return True


def _prepare(job: ChatJob, key: str) -> PreparedPrompt:
    return prepare_job(_worker["session"], job, _worker["limits"], _worker["lock"], key)
