"""A real ``lvlm serve`` application on 127.0.0.1 (uvicorn in a thread), media as data: URLs, expected answers."""

from __future__ import annotations

import base64
import threading
import time
from pathlib import Path

import openai
import uvicorn

from lvlm.apps.serve import bind
from lvlm.inference.batch_generate import GenerationSettings, generate_batch
from lvlm.inference.batch_scheduler import BatchScheduler
from lvlm.inference.media_files import load_media
from lvlm.inference.prompts import prepare_prompt
from lvlm.inference.serve_app import create_app
from lvlm.inference.serve_requests import ServeLimits

MODEL = "tiny"


class LiveServer:
    """``create_app(...)`` served by uvicorn on a free port of 127.0.0.1 until :meth:`stop`."""

    def __init__(self, session, limits: ServeLimits | None = None, api_key: str | None = None, **scheduler) -> None:
        self.scheduler = BatchScheduler(session, **scheduler)
        app = create_app(session, MODEL, limits, self.scheduler, api_key)
        sock = bind("127.0.0.1", 0)
        self.url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        self.server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [sock]}, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            assert time.monotonic() < deadline and self.thread.is_alive(), "the server did not start"
            time.sleep(0.02)

    def client(self, api_key: str = "unused") -> openai.OpenAI:
        return openai.OpenAI(base_url=self.url + "/v1", api_key=api_key, max_retries=0, timeout=60)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=60)


def data_url(path: Path, mime: str) -> str:
    return f"data:{mime};base64," + base64.b64encode(Path(path).read_bytes()).decode()


def image_part(url: str) -> dict:
    return {"type": "image_url", "image_url": {"url": url}}


def video_part(url: str) -> dict:
    return {"type": "video_url", "video_url": {"url": url}}


def text_part(text: str) -> dict:
    return {"type": "text", "text": text}


def expected_answer(session, turns: list[dict], files: list[tuple[str, Path]], max_tokens: int) -> tuple[str, int]:
    """The library's own greedy answer (one request alone) and its prompt length in tokens."""
    media = [(kind, load_media(session, kind, path)) for kind, path in files]
    sample = prepare_prompt(session, turns, media)
    return generate_batch(session, [sample], GenerationSettings(max_tokens))[0], int(sample.input_ids.shape[0])
