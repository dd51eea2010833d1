"""``lvlm serve``: an OpenAI-compatible HTTP server for a checkpoint (chat completions with images and videos).

    lvlm serve --model CKPT                                   # http://127.0.0.1:8000/v1
    lvlm serve --model CKPT --port 9000 --media-root /data --api-key-env LVLM_API_KEY

Concurrent requests are batched continuously (``--max-batch-size``); greedy answers equal one-by-one generation. SIGTERM
or Ctrl-C stops taking requests, finishes the ones in flight, then exits. ``docs/inference.md`` describes the API.
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import signal
import socket
import sys
from pathlib import Path

from lvlm.core.errors import UserError

SWITCH_INTERVAL_S = 0.0005

# uvicorn, torch and the model are imported once the arguments are known to be good.


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="lvlm serve", description=__doc__.splitlines()[0])
    p.add_argument("--model", required=True, help="checkpoint directory (lvlm, transformers or original layout)")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=8000, help="port (0: any free port; the address is printed)")
    p.add_argument("--served-model-name", help="the model id clients ask for (default: the directory's name)")
    p.add_argument("--media-root", type=Path, help="allow local media paths inside this folder")
    p.add_argument("--allow-remote-media", action="store_true", help="fetch http(s) media URLs")
    p.add_argument("--api-key-env", metavar="VAR", help="require the API key held in this environment variable")
    p.add_argument("--template", help="override the checkpoint's chat template (vicuna_v1, llava_v1, plain)")
    p.add_argument("--num-frames", type=int, help="frames per video (default: as many as training used)")
    p.add_argument(
        "--image-mode", choices=["pad", "crop"], help="override how images are fitted (default: as the model records)"
    )
    p.add_argument("--dtype", help="model dtype, e.g. bfloat16 (default: as saved)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--temperature", type=float, default=0.2, help="when a request gives none (0.2, the original's)")
    p.add_argument("--max-tokens", type=int, default=1024, help="largest max_tokens, and the default")
    p.add_argument("--max-body-mb", type=float, default=100.0, help="largest request body")
    p.add_argument("--max-media-mb", type=float, default=64.0, help="largest encoded media item")
    p.add_argument("--max-media-items", type=int, default=8, help="media items per request")
    p.add_argument("--max-frames", type=int, default=64, help="visual frames per request (image 1, video its frames)")
    p.add_argument("--max-batch-size", type=int, default=8, help="requests sharing one generate call")
    p.add_argument("--batch-window-ms", type=float, default=20.0, help="how long a batch waits for more requests")
    p.add_argument("--prepare-workers", type=int, default=1,
                   help="processes that decode media and tokenize (0: threads of the server process)")  # fmt: skip
    p.add_argument("--threads", type=int, help="torch CPU threads (default: torch's; 1 is steadiest on a busy machine)")
    return p


def _limits(args: argparse.Namespace):
    if args.media_root is not None and not args.media_root.is_dir():
        raise UserError(f"--media-root {args.media_root}: no such folder")
    from lvlm.inference.serve_media import MediaPolicy
    from lvlm.inference.serve_requests import ServeLimits

    policy = MediaPolicy(args.media_root, args.allow_remote_media, int(args.max_media_mb * 2**20))
    return ServeLimits(policy, int(args.max_body_mb * 2**20), args.max_tokens, args.max_media_items,
                       args.max_frames, args.temperature)  # fmt: skip


def _api_key(args: argparse.Namespace) -> str | None:
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
    args = build_parser().parse_args(argv)
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


def _build_app(args: argparse.Namespace, limits, api_key: str | None) -> tuple:
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
