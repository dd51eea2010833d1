"""The OpenAI-compatible HTTP API (FastAPI): ``GET /v1/models`` and ``POST /v1/chat/completions``.

Requests are validated (:mod:`lvlm.inference.serve_requests`), prepared in a worker thread
(:mod:`lvlm.inference.serve_prepare`) and answered by the :class:`~lvlm.inference.batch_scheduler.BatchScheduler`,
which batches concurrent requests. Every failure is an OpenAI error body with its status; ``stream: true``
answers as server-sent ``chat.completion.chunk`` events ending with ``data: [DONE]``.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import replace
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from lvlm.inference.batch_scheduler import BatchScheduler, SchedulerClosedError
from lvlm.inference.serve_errors import ApiError, bad_request
from lvlm.inference.serve_parts import PartTypes
from lvlm.inference.serve_prepare import PreparedPrompt, prepare_job
from lvlm.inference.serve_requests import ChatJob, ServeLimits, parse_request
from lvlm.inference.serve_workers import PreparationPool
from lvlm.inference.session import InferenceSession
from lvlm.models.generation.answer import Answer

FINISHED = object()


def create_app(
    session: InferenceSession,
    model_name: str,
    limits: ServeLimits | None = None,
    scheduler: BatchScheduler | None = None,
    api_key: str | None = None,
    preparation: PreparationPool | None = None,
) -> FastAPI:
    """The server's ASGI application; the scheduler starts and (after finishing its queue) stops with it.

    Args:
        session: the loaded checkpoint.
        model_name: the id clients give as ``model``.
        limits: request limits and media policy.
        scheduler: the batching scheduler (default: batches of up to 8).
        api_key: when set, every request needs ``Authorization: Bearer <api_key>``.
        preparation: worker processes that prepare requests (default: threads of this process).

    Raises:
        UserError: a modality declares OpenAI part types the server cannot route (:mod:`.serve_parts`).
    """
    limits = limits or ServeLimits()
    parts = PartTypes.of(session.modalities)
    scheduler = scheduler or BatchScheduler(session)
    created = int(time.time())

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        scheduler.start()
        yield
        await run_in_threadpool(scheduler.close)
        if preparation is not None:
            preparation.close()

    app = FastAPI(title="lvlm", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)
    app.state.scheduler = scheduler
    _add_error_handlers(app)
    _add_key_check(app, api_key)
    _add_model_routes(app, model_name, created)
    _add_chat_route(app, session, model_name, limits, parts, preparation)
    return app


def _add_error_handlers(app: FastAPI) -> None:
    """Every failure answers as an OpenAI error body with its status."""

    @app.exception_handler(ApiError)
    async def api_error(request: Request, err: ApiError) -> JSONResponse:
        return JSONResponse(err.body(), status_code=err.status)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, err: StarletteHTTPException) -> JSONResponse:
        return JSONResponse(ApiError(err.status_code, str(err.detail)).body(), status_code=err.status_code)

    @app.exception_handler(Exception)
    async def server_error(request: Request, err: Exception) -> JSONResponse:
        return JSONResponse(ApiError(500, f"internal error: {type(err).__name__}: {err}").body(), status_code=500)


def _add_key_check(app: FastAPI, api_key: str | None) -> None:
    """With ``api_key``, every ``/v1`` request needs ``Authorization: Bearer <api_key>`` (401 otherwise)."""

    @app.middleware("http")
    async def check_key(request: Request, call_next: Any) -> Any:
        if api_key is not None and request.url.path.startswith("/v1"):
            given = request.headers.get("authorization", "")
            if not secrets.compare_digest(given.encode(), f"Bearer {api_key}".encode()):
                err = ApiError(401, "missing or wrong API key (Authorization: Bearer <key>)", "invalid_api_key")
                return JSONResponse(err.body(), status_code=401)
        return await call_next(request)


def _add_model_routes(app: FastAPI, model_name: str, created: int) -> None:
    """``GET /health``, ``GET /v1/models`` and ``GET /v1/models/{name}``."""

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/v1/models")
    async def models() -> dict[str, Any]:
        return {"object": "list", "data": [_model_card(model_name, created)]}

    @app.get("/v1/models/{name:path}")
    async def model(name: str) -> dict[str, Any]:
        if name != model_name:
            raise _unknown_model(name, model_name)
        return _model_card(model_name, created)


def _add_chat_route(
    app: FastAPI,
    session: InferenceSession,
    model_name: str,
    limits: ServeLimits,
    parts: PartTypes,
    preparation: PreparationPool | None,
) -> None:
    """``POST /v1/chat/completions``: parse, prepare (worker processes or threads), answer by the scheduler."""
    scheduler: BatchScheduler = app.state.scheduler

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request) -> Any:
        with scheduler.arriving():
            job = parse_request(await read_json(request, limits.max_body_bytes), limits, parts)
            if job.model != model_name:
                raise _unknown_model(job.model, model_name)
            completion_id = f"chatcmpl-{uuid.uuid4().hex}"
            if preparation is not None:
                prompt = await asyncio.wrap_future(preparation.submit(job, completion_id))
            else:
                prompt = await run_in_threadpool(
                    prepare_job, session, job, limits, scheduler.tokenizer_lock, completion_id
                )
        header = {"id": completion_id, "created": int(time.time()), "model": model_name}
        if job.stream:
            return StreamingResponse(_stream(scheduler, job, prompt, header), media_type="text/event-stream")
        row = _answer(job, prompt)
        await asyncio.wrap_future(_submit(scheduler, prompt, row))
        message = {"role": "assistant", "content": row.text}
        choice = {"index": 0, "message": message, "logprobs": None, "finish_reason": row.finish_reason}
        return {**header, "object": "chat.completion", "choices": [choice], "usage": _usage(prompt, row)}


async def read_json(request: Request, max_bytes: int) -> Any:
    """The request body as JSON, refused with 413 past ``max_bytes`` and 400 when it is not JSON."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise ApiError(413, f"request body of {declared} bytes exceeds this server's limit of {max_bytes} "
                       "(--max-body-mb)", "body_too_large")  # fmt: skip
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > max_bytes:
            raise ApiError(413, f"request body exceeds this server's limit of {max_bytes} bytes", "body_too_large")
    try:
        return json.loads(body)
    except (UnicodeDecodeError, ValueError) as err:
        raise bad_request(f"the request body is not valid JSON: {err}", "invalid_json") from err


def _answer(job: ChatJob, prompt: PreparedPrompt, on_text: Callable[[str], None] | None = None) -> Answer:
    """The request's answer: its settings, within the prompt's room, with its stop strings."""
    return Answer(replace(job.settings, max_new_tokens=prompt.max_tokens, stop=tuple(job.stop)), on_text)


def _submit(scheduler: BatchScheduler, prompt: PreparedPrompt, row: Answer) -> Any:
    try:
        return scheduler.submit(prompt.sample, row)
    except SchedulerClosedError as err:
        raise ApiError(503, "the server is shutting down; retry on another instance", "shutting_down") from err


async def _stream(
    scheduler: BatchScheduler, job: ChatJob, prompt: PreparedPrompt, header: dict[str, Any]
) -> AsyncIterator[str]:
    """Server-sent events: a role chunk, one chunk per text delta, a finish chunk, optional usage, ``[DONE]``."""
    loop = asyncio.get_running_loop()
    pieces: asyncio.Queue = asyncio.Queue()
    row = _answer(job, prompt, on_text=lambda text: loop.call_soon_threadsafe(pieces.put_nowait, text))
    future = _submit(scheduler, prompt, row)
    future.add_done_callback(lambda _: loop.call_soon_threadsafe(pieces.put_nowait, FINISHED))
    chunk = {**header, "object": "chat.completion.chunk"}
    try:
        yield _event({**chunk, "choices": [_delta({"role": "assistant", "content": ""})]})
        while (piece := await pieces.get()) is not FINISHED:
            yield _event({**chunk, "choices": [_delta({"content": piece})]})
        if future.exception() is not None:
            err = ApiError(500, f"generation failed: {future.exception()}")
            yield _event(err.body())
        else:
            yield _event({**chunk, "choices": [_delta({}, row.finish_reason)]})
            if job.include_usage:
                yield _event({**chunk, "choices": [], "usage": _usage(prompt, row)})
        yield "data: [DONE]\n\n"
    finally:
        row.cancel()  # a client that goes away mid-answer frees its row at the next token


def _event(data: dict[str, Any]) -> str:
    return f"data: {json.dumps(data)}\n\n"


def _delta(delta: dict[str, str], finish_reason: str | None = None) -> dict[str, Any]:
    return {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}


def _usage(prompt: PreparedPrompt, row: Answer) -> dict[str, int]:
    return {
        "prompt_tokens": prompt.prompt_tokens,
        "completion_tokens": len(row.ids),
        "total_tokens": prompt.prompt_tokens + len(row.ids),
    }


def _model_card(name: str, created: int) -> dict[str, Any]:
    return {"id": name, "object": "model", "created": created, "owned_by": "lvlm"}


def _unknown_model(name: str, served: str) -> ApiError:
    return ApiError(
        404, f"model {name!r} is not served here; this server serves {served!r}", "model_not_found", "model"
    )
