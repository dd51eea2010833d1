"""A judge behind any OpenAI-compatible ``/chat/completions`` endpoint (OpenAI, vLLM, SGLang, llama.cpp...).

Only the standard library is used. The API key is read from the environment variable named by
``api_key_env`` at each request and never stored on the object, in the cache or in results.
"""

from __future__ import annotations

import email.utils
import http.client
import json
import logging
import os
import random
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from lvlm.eval.judges.base import Judge, JudgeConfigError, JudgeError, JudgeItem, Judgment
from lvlm.eval.judges.prompt import PROMPT_VERSION, MalformedReply, build_messages, parse_judge_reply, prompt_hash

log = logging.getLogger(__name__)
RETRYABLE_STATUS = frozenset({408, 409, 429, 500, 502, 503, 504})
# OSError covers URLError, ConnectionError, TimeoutError and any other socket failure.
TRANSPORT_ERRORS = (http.client.HTTPException, OSError)
_CHUNK = 1 << 16


def parse_retry_after(value: str | None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (seconds or an HTTP date), or None."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


class OpenAICompatibleJudge(Judge):
    """The Video-ChatGPT judge prompt sent to an OpenAI-compatible server, with retries and an optional cache.

    Args:
        base_url: API root, e.g. ``http://127.0.0.1:8000/v1``; requests go to ``{base_url}/chat/completions``.
        model: judge model name sent in the request (and part of the cache key).
        api_key_env: NAME of the environment variable holding the key; unset means no Authorization header.
        temperature: sampling temperature (0 for a repeatable judge).
        seed: sent as ``seed`` when given (servers that honour it make sampling repeatable).
        timeout: seconds one HTTP request may take (connect, wait and read; a stalled read is abandoned after at
            most ``timeout`` more), then it counts as a transport error and is retried.
        max_retries: retries of one request after 429/5xx/connection errors.
        base_delay: first backoff delay in seconds; doubles each retry, with jitter, capped at ``max_delay``.
        max_delay: cap of one wait (a longer ``Retry-After`` is honoured up to this cap).
        max_total_wait: total seconds one item may spend waiting before it is recorded as a failure.
        max_malformed: extra requests after a malformed reply before the item is recorded as a failure.
        cache, workers, deadline: see :class:`~lvlm.eval.judges.base.Judge`; waits and requests are cut short at
            the deadline.
        sleep: the waiting function (tests pass a recorder).
    """

    kind = "openai"

    def __init__(
        self,
        base_url: str,
        model: str,
        api_key_env: str = "OPENAI_API_KEY",
        temperature: float = 0.0,
        seed: int | None = None,
        timeout: float = 60.0,
        max_retries: int = 6,
        base_delay: float = 1.0,
        max_delay: float = 60.0,
        max_total_wait: float = 600.0,
        max_malformed: int = 3,
        cache: Any | None = None,
        workers: int = 1,
        deadline: float | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        super().__init__(cache=cache, workers=workers, deadline=deadline)
        if not timeout > 0:
            raise JudgeConfigError(f"the judge timeout must be a positive number of seconds, got {timeout}")
        parts = urlsplit(base_url)
        if parts.scheme not in {"http", "https"} or not parts.netloc:
            raise JudgeConfigError(f"judge base_url {base_url!r} must look like http://HOST:PORT/v1")
        self.url = base_url.rstrip("/") + "/chat/completions"
        self.host = parts.netloc
        self.model, self.api_key_env = model, api_key_env
        self.temperature, self.seed, self.timeout = temperature, seed, timeout
        self.max_retries, self.base_delay, self.max_delay = max_retries, base_delay, max_delay
        self.max_total_wait, self.max_malformed = max_total_wait, max_malformed
        self._sleep, self._rng = sleep, random.Random()
        # A local judge must not be sent through an HTTP(S)_PROXY from the environment.
        local = parts.hostname in {"127.0.0.1", "localhost", "::1"}
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({} if local else None))

    def describe(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "model": self.model,
            "base_url_host": self.host,
            "api_key_env": self.api_key_env,
            "temperature": self.temperature,
            "seed": self.seed,
            "prompt_version": PROMPT_VERSION,
            "prompt_hash": prompt_hash(),
        }

    def _payload(self, item: JudgeItem) -> bytes:
        body: dict[str, Any] = {
            "model": self.model,
            "messages": build_messages(item.question, item.answer, item.prediction),
            "temperature": self.temperature,
        }
        if self.seed is not None:
            body["seed"] = self.seed
        return json.dumps(body).encode("utf-8")

    def _headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json"}
        key = os.environ.get(self.api_key_env)
        if key:
            headers["Authorization"] = f"Bearer {key}"
        return headers

    def _backoff(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return min(retry_after, self.max_delay)
        delay = min(self.max_delay, self.base_delay * 2**attempt)
        return delay * (0.5 + 0.5 * self._rng.random())  # jitter so parallel workers do not retry in step

    def _post(self, item: JudgeItem) -> str:
        """One completion's text, retrying transport errors; raises JudgeError when the budget is spent."""
        # Own loop, not openai's max_retries or tenacity: it bounds one item's total wait (max_total_wait), counts
        # every retry in the results, stops at once on 401/403/404, and adds no dependency to lvlm's core.
        waited, payload = 0.0, self._payload(item)
        error = ""
        for attempt in range(self.max_retries + 1):
            left = self.remaining()
            if left is not None and left <= 0:
                error = f"{error}; then the judge stage's deadline passed".lstrip("; ")
                break
            timeout = self.timeout if left is None else min(self.timeout, left)
            request = urllib.request.Request(self.url, data=payload, headers=self._headers(), method="POST")
            self.stats.add(requests=1)
            retry_after, error = None, ""
            try:
                with self._opener.open(request, timeout=timeout) as response:
                    return self._content(_read(response, time.monotonic() + timeout))
            except urllib.error.HTTPError as err:
                if err.code in (401, 403, 404):
                    raise JudgeConfigError(
                        f"judge at {self.url} answered HTTP {err.code}: check --base-url, --judge-model and "
                        f"that ${self.api_key_env} holds a valid key"
                    ) from None
                if err.code not in RETRYABLE_STATUS:
                    raise JudgeError(f"HTTP {err.code} from {self.host}: {_error_body(err)!r}") from None
                retry_after, error = parse_retry_after(err.headers.get("Retry-After")), f"HTTP {err.code}"
            except TRANSPORT_ERRORS as err:
                error = f"{type(err).__name__}: {err}"
            delay = self._backoff(attempt, retry_after)
            left = self.remaining()
            out_of_time = waited + delay > self.max_total_wait or (left is not None and delay > left)
            if attempt == self.max_retries or out_of_time:
                break
            self.stats.add(retries=1)
            log.debug("judge request failed (%s); retrying in %.2fs", error, delay)
            self._sleep(delay)
            waited += delay
        raise JudgeError(f"judge at {self.host} failed after {attempt + 1} requests: {error}")

    def _content(self, body: bytes) -> str:
        """The reply's ``choices[0].message.content`` when it is text; anything else is returned as text to be
        counted as a malformed reply (a body that is not JSON, a content that is an object, a number, null...)."""
        try:
            content = json.loads(body)["choices"][0]["message"]["content"]
        except (ValueError, KeyError, IndexError, TypeError, RecursionError):  # ValueError: not JSON, not UTF-8
            return body.decode("utf-8", "replace")
        return content if isinstance(content, str) else f"content is not text: {json.dumps(content)[:200]}"

    def _judge(self, item: JudgeItem) -> Judgment:
        for _ in range(self.max_malformed + 1):
            text = self._post(item)
            try:
                pred, score = parse_judge_reply(text)
            except MalformedReply as err:
                self.stats.add(malformed=1)
                reason = str(err)
                continue
            return Judgment(pred, score, raw=text)
        raise JudgeError(f"judge reply malformed {self.max_malformed + 1} times; last: {reason}")


def _read(response: http.client.HTTPResponse, until: float) -> bytes:
    """The whole body, read in chunks; TimeoutError once ``until`` (``time.monotonic``) has passed."""
    chunks = []
    while chunk := response.read(_CHUNK):
        chunks.append(chunk)
        if time.monotonic() > until:
            raise TimeoutError("the judge's reply took longer than the timeout")
    return b"".join(chunks)


def _error_body(err: urllib.error.HTTPError) -> bytes:
    """The first bytes of an error reply's body, for the item's error (empty when it cannot be read)."""
    try:
        return err.read(200)
    except (http.client.HTTPException, OSError):
        return b""
