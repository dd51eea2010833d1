"""``lvlm serve``: an OpenAI-compatible HTTP server for a checkpoint (chat completions with images and videos).

    lvlm serve --model CKPT                                   # http://127.0.0.1:8000/v1
    lvlm serve --model CKPT --port 9000 --media-root /data --api-key-env LVLM_API_KEY

Concurrent requests are batched continuously (``--max-batch-size``); greedy answers equal one-by-one generation. SIGTERM
or Ctrl-C stops taking requests, finishes the ones in flight, then exits. ``docs/inference.md`` describes the API.
"""

from __future__ import annotations

import ipaddress
import os
import signal
import socket
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from jsonargparse import ArgumentParser

from lvlm.apps import command
from lvlm.core.errors import UserError

SWITCH_INTERVAL_S = 0.0005

# uvicorn, torch and the model are imported once the arguments are known to be good.


@dataclass
class Serve:
    """An OpenAI-compatible HTTP server for a checkpoint (chat completions with images and videos).

    The request limits are flat flags (``--max-tokens``...), as the API documentation and the server's own
    messages name them; :func:`_limits` turns them into the library's ``ServeLimits``.

    Attributes:
        model: checkpoint directory (lvlm, transformers or original layout).
        host: address to bind (default 127.0.0.1: this machine only).
        port: port (0: any free port; the address is printed).
        served_model_name: the model id clients ask for (default: the directory's name).
        media_root: allow local media paths inside this folder.
        allow_remote_media: fetch http(s) media URLs.
        api_key_env: require the API key held in this environment variable.
        template: override the checkpoint's chat template (vicuna_v1, llava_v1, plain).
        num_frames: frames per video (default: as many as training used).
        image_mode: override how images are fitted (default: as the model records).
        dtype: model dtype, e.g. bfloat16 (default: as saved).
        device: cpu or cuda.
        temperature: when a request gives none (0.2, the original's).
        max_tokens: largest max_tokens, and the default.
        max_body_mb: largest request body.
        max_media_mb: largest encoded media item.
        max_media_items: media items per request.
        max_frames: visual frames per request (image 1, video its frames).
        max_batch_size: requests sharing one generate call.
        batch_window_ms: how long a batch waits for more requests.
        prepare_workers: processes that decode media and tokenize (0: threads of the server process).
        threads: torch CPU threads (default: torch's; 1 is steadiest on a busy machine).
    """

    model: str
    host: str = "127.0.0.1"
    port: int = 8000
    served_model_name: str | None = None
    media_root: Path | None = None
    allow_remote_media: bool = False
    api_key_env: str | None = None
    template: str | None = None
    num_frames: int | None = None
    image_mode: Literal["pad", "crop"] | None = None
    dtype: str | None = None
    device: str = "cpu"
    temperature: float = 0.2
    max_tokens: int = 1024
    max_body_mb: float = 100.0
    max_media_mb: float = 64.0
    max_media_items: int = 8
    max_frames: int = 64
    max_batch_size: int = 8
    batch_window_ms: float = 20.0
    prepare_workers: int = 1
    threads: int | None = None

    def run(self) -> int:
        """Serve until SIGTERM or Ctrl-C; returns the exit status."""
        return serve(self)


def build_parser() -> ArgumentParser:
    """The parser of ``lvlm serve`` (jsonargparse, from :class:`Serve`)."""
    return command.build_parser(Serve, "lvlm serve")


def _limits(args: Serve):
    if args.media_root is not None and not args.media_root.is_dir():
        raise UserError(f"--media-root {args.media_root}: no such folder")
    from lvlm.inference.serve_media import MediaPolicy
    from lvlm.inference.serve_requests import ServeLimits

    policy = MediaPolicy(args.media_root, args.allow_remote_media, int(args.max_media_mb * 2**20))
    return ServeLimits(policy, int(args.max_body_mb * 2**20), args.max_tokens, args.max_media_items,
                       args.max_frames, args.temperature)  # fmt: skip


def _api_key(args: Serve) -> str | None:
    if args.api_key_env is None:
        return None
    key = os.environ.get(args.api_key_env, "")
    if not key:
        raise UserError(f"--api-key-env {args.api_key_env}: that environment variable is unset or empty")
    return key


def bind(host: str, port: int) -> socket.socket:
    """A listening socket (bound here so that ``--port 0`` can print the port it got)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as err:
        sock.close()
        raise UserError(f"cannot listen on {host}:{port}: {err.strerror}") from err
    sock.listen(128)
    return sock


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def _stopped(signum: int, frame: object) -> None:
    """The handler uvicorn's re-raised SIGTERM/SIGINT reach after the drain: nothing left to do."""


def main(argv: list[str] | None = None) -> int:
    """Run ``lvlm serve`` until SIGTERM or Ctrl-C; returns the exit status."""
    return command.run(Serve, argv, "lvlm serve")


def serve(args: Serve) -> int:
    """Load the checkpoint, bind, and serve until SIGTERM or Ctrl-C; returns the exit status."""
    api_key = _api_key(args)
    limits = _limits(args)
    import uvicorn

    app, scheduler, banner = _build_app(args, limits, api_key)
    sock = bind(args.host, args.port)
    host, port = sock.getsockname()[:2]
    if not _is_loopback(args.host) and api_key is None:
        print(f"lvlm serve: warning: listening on {host} with no API key (--api-key-env)", file=sys.stderr)
    print(f"lvlm serve: {banner.replace('{url}', f'http://{host}:{port}/v1')}", flush=True)
    # uvicorn drains on SIGTERM/SIGINT, then raises the signal again under the handlers it found: these make
    # that a normal return, so the process reports and exits 0 after a clean shutdown.
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, _stopped)
    # The model's thread gives the interpreter lock up at every torch call and must take it back from the thread
    # serving HTTP; Python's default 5 ms switch interval can stall each of those hand-overs that long.
    sys.setswitchinterval(SWITCH_INTERVAL_S)
    uvicorn.Server(uvicorn.Config(app, log_level="warning", timeout_graceful_shutdown=None)).run(sockets=[sock])
    sizes, prefills = dict(sorted(scheduler.batch_sizes.items())), dict(sorted(scheduler.prefill_sizes.items()))
    print(f"lvlm serve: stopped after {scheduler.requests} requests; forward passes by rows: {sizes}; "
          f"prefills by requests: {prefills}", flush=True)  # fmt: skip
    return 0


def _build_app(args: Serve, limits, api_key: str | None) -> tuple:
    """The checkpoint loaded, the scheduler and preparation workers made, the app; and a start-up line."""
    import torch

    from lvlm.inference.batch_scheduler import BatchScheduler
    from lvlm.inference.serve_app import create_app
    from lvlm.inference.serve_media import describe_root
    from lvlm.inference.serve_workers import PreparationPool
    from lvlm.inference.session import TemplateNotRecordedError, load_session

    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        session = load_session(args.model, args.template, num_frames=args.num_frames, image_mode=args.image_mode,
                               torch_dtype=args.dtype, device=args.device)  # fmt: skip
    except (TemplateNotRecordedError, FileNotFoundError) as err:
        raise UserError(str(err)) from err
    name = args.served_model_name or Path(args.model).resolve().name
    scheduler = BatchScheduler(session, args.max_batch_size, args.batch_window_ms / 1000)
    pool = PreparationPool(session, limits, args.prepare_workers) if args.prepare_workers > 0 else None
    banner = (f"model {name!r} at {{url}} ({session.template.name} template, {session.num_frames} frames per "
              f"video; media: {describe_root(limits.media)})")  # fmt: skip
    return create_app(session, name, limits, scheduler, api_key, pool), scheduler, banner


if __name__ == "__main__":
    sys.exit(main())
