"""``lvlm serve`` against the official ``openai`` client: a real uvicorn server on 127.0.0.1, a tiny checkpoint.

Answers are compared with the library's own greedy generation for the same conversation and media.
"""

from __future__ import annotations

import functools
import http.server
import json
import threading
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import openai
import pytest

from lvlm.inference.serve_media import MediaPolicy
from lvlm.inference.serve_requests import ServeLimits
from tests.apps.serve_fixtures import (
    MODEL,
    LiveServer,
    data_url,
    expected_answer,
    image_part,
    text_part,
    video_part,
)
from tests.waiting import wait_until

TOKENS = 8
QUESTION = "what colour is the shape?"


@pytest.fixture(scope="module")
def server(session, media_dir):
    limits = ServeLimits(MediaPolicy(media_root=media_dir, max_bytes=200_000), max_body_bytes=400_000, max_tokens=64)
    live = LiveServer(session, limits, window_s=0.05)
    yield live
    live.stop()


@pytest.fixture(scope="module")
def urls(media_dir):
    return {
        "red": data_url(media_dir / "red.png", "image/png"),
        "blue": data_url(media_dir / "blue.jpg", "image/jpeg"),
        "right": data_url(media_dir / "right.mp4", "video/mp4"),
        "other": data_url(media_dir / "other.mp4", "video/mp4"),
    }


def ask(client, content, max_tokens=TOKENS, **options):
    return client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": content}], max_tokens=max_tokens, temperature=0, **options
    )


def test_models_lists_the_served_model(server):
    client = server.client()
    assert [model.id for model in client.models.list()] == [MODEL]
    assert client.models.retrieve(MODEL).owned_by == "lvlm"


@pytest.mark.parametrize(
    ("parts", "marked", "files"),
    [
        (["red"], "<image>\n", [("image", "red.png")]),
        (["right"], "<video>\n", [("video", "right.mp4")]),
        (["red", "right"], "<video><image>\n", [("image", "red.png"), ("video", "right.mp4")]),
    ],
    ids=["image", "video", "image+video"],
)
def test_answers_equal_the_library(server, session, media_dir, urls, parts, marked, files):
    content = [text_part(QUESTION)]
    content += [image_part(urls[p]) if p in {"red", "blue"} else video_part(urls[p]) for p in parts]
    reply = ask(server.client(), content)
    turns = [{"from": "human", "value": marked + QUESTION}]
    answer, prompt_tokens = expected_answer(session, turns, [(k, media_dir / f) for k, f in files], TOKENS)
    assert reply.choices[0].message.content == answer and answer
    assert reply.choices[0].finish_reason in {"stop", "length"}
    assert reply.usage.prompt_tokens == prompt_tokens
    assert reply.usage.total_tokens == prompt_tokens + reply.usage.completion_tokens


def test_streaming_sends_the_same_answer_in_chunks(server, urls):
    content = [text_part(QUESTION), image_part(urls["blue"]), video_part(urls["other"])]
    whole = ask(server.client(), content)
    chunks = list(ask(server.client(), content, stream=True, stream_options={"include_usage": True}))
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == whole.choices[0].message.content
    assert len([c for c in chunks if c.choices and c.choices[0].delta.content]) > 1  # really streamed
    assert chunks[-2].choices[0].finish_reason == whole.choices[0].finish_reason
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == whole.usage.completion_tokens


def test_stream_is_server_sent_events_ending_with_done(server, urls):
    body = {"model": MODEL, "stream": True, "max_tokens": 3, "temperature": 0,
            "messages": [{"role": "user", "content": [text_part(QUESTION), image_part(urls["red"])]}]}  # fmt: skip
    status, text = post(server, body)
    events = [line for line in text.split("\n\n") if line]
    assert status == 200 and all(e.startswith("data: ") for e in events)
    assert events[-1] == "data: [DONE]"
    assert json.loads(events[0][6:])["object"] == "chat.completion.chunk"


def test_multi_turn_and_system_prompt(server, session, media_dir, urls):
    first, _ = expected_answer(session, [{"from": "human", "value": "<image>\n" + QUESTION}],
                               [("image", media_dir / "red.png")], TOKENS)  # fmt: skip
    messages = [
        {"role": "user", "content": [text_part(QUESTION), image_part(urls["red"])]},
        {"role": "assistant", "content": first},
        {"role": "user", "content": "where does it move?"},
    ]
    reply = server.client().chat.completions.create(model=MODEL, messages=messages, max_tokens=TOKENS, temperature=0)
    turns = [{"from": "human", "value": "<image>\n" + QUESTION}, {"from": "gpt", "value": first},
             {"from": "human", "value": "where does it move?"}]  # fmt: skip
    second, prompt_tokens = expected_answer(session, turns, [("image", media_dir / "red.png")], TOKENS)
    assert reply.choices[0].message.content == second and reply.usage.prompt_tokens == prompt_tokens
    system = server.client().chat.completions.create(
        model=MODEL, messages=[{"role": "system", "content": "answer"}, *messages], max_tokens=TOKENS, temperature=0
    )
    assert system.usage.prompt_tokens < prompt_tokens  # "answer" replaced the template's long system prompt


def test_concurrent_requests_share_batches_and_answer_as_one_by_one(session, urls):
    contents = [
        [text_part(QUESTION), image_part(urls["red"])],
        [text_part("where does the square move?"), video_part(urls["right"])],
        [text_part("answer yes or no")],
        [text_part("describe the video and the picture"), image_part(urls["blue"]), video_part(urls["other"])],
        [text_part("what colour is the small object on the background?"), image_part(urls["blue"])],
        [text_part("describe this clip"), video_part(urls["other"])],
    ]
    live = LiveServer(session, window_s=0.0, max_wait_s=120.0)
    try:
        one_by_one = [ask(live.client(), content).choices[0].message.content for content in contents]
        assert set(live.scheduler.batch_sizes) == {1}
        queued = live.scheduler.requests + len(contents)
        with ThreadPoolExecutor(len(contents)) as pool:
            # No clock decides what shares a batch: the test holds the batch back, as a request still being
            # prepared does, until all six are queued; then they start together.
            with live.scheduler.arriving():
                answers = [pool.submit(lambda c=c: ask(live.client(), c).choices[0].message.content) for c in contents]
                wait_until(lambda: live.scheduler.requests == queued, "all six requests to be queued")
            together = [answer.result(timeout=120) for answer in answers]
    finally:
        live.stop()
    assert together == one_by_one and len(set(one_by_one)) > 1
    assert max(live.scheduler.prefill_sizes) > 1 and max(live.scheduler.batch_sizes) > 1  # one shared generate call


def test_stop_strings_and_max_tokens(server, urls):
    content = [text_part(QUESTION), image_part(urls["red"])]
    full = ask(server.client(), content, max_tokens=12)
    words = full.choices[0].message.content.split()
    assert len(words) > 2
    cut = ask(server.client(), content, max_tokens=12, stop=[" " + words[2]])
    assert cut.choices[0].finish_reason == "stop"
    assert full.choices[0].message.content.startswith(cut.choices[0].message.content)
    assert words[2] not in cut.choices[0].message.content.split()[2:3]
    short = ask(server.client(), content, max_tokens=2)
    assert short.usage.completion_tokens == 2 and short.choices[0].finish_reason == "length"


def post(server, body, raw: bytes | None = None, headers: dict | None = None) -> tuple[int, str]:
    data = raw if raw is not None else json.dumps(body).encode()
    request = urllib.request.Request(server.url + "/v1/chat/completions", data=data, method="POST",
                                     headers={"Content-Type": "application/json", **(headers or {})})  # fmt: skip
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()


def user(content) -> list[dict]:
    return [{"role": "user", "content": content}]


@pytest.mark.parametrize(
    ("case", "status", "code"),
    [
        ("malformed_json", 400, "invalid_json"),
        ("unknown_model", 404, "model_not_found"),
        ("n_2", 400, "unsupported_n"),
        ("undecodable_image", 400, "invalid_media"),
        ("bad_base64", 400, "invalid_media_url"),
        ("oversized_media", 400, "media_too_large"),
        ("body_too_large", 413, "body_too_large"),
        ("prompt_too_long", 400, "context_length_exceeded"),
        ("max_tokens_over_limit", 400, "max_tokens_too_large"),
        ("max_tokens_past_context", 400, "context_length_exceeded"),
        ("remote_refused", 403, "remote_media_refused"),
        ("outside_media_root", 403, "media_path_refused"),
        ("unsupported_part", 400, "unsupported_content"),
        ("media_part_without_url", 400, "unsupported_content"),
        ("modality_the_model_lacks", 400, "unsupported_media"),
        ("ends_with_assistant", 400, "invalid_request"),
        ("wrong_field_type", 400, "invalid_request"),
    ],
)
def test_bad_requests_get_openai_errors_and_the_server_goes_on(server, media_dir, urls, case, status, code):
    ok = {"model": MODEL, "max_tokens": 2, "temperature": 0}
    media = {"type": "image_url", "image_url": {"url": urls["red"]}}
    bodies = {
        "unknown_model": {**ok, "model": "gpt-4o", "messages": user("hi")},
        "n_2": {**ok, "n": 2, "messages": user("hi")},
        "undecodable_image": {**ok, "messages": user([image_part("data:image/png;base64,bm90IGFuIGltYWdl")])},
        "bad_base64": {**ok, "messages": user([image_part("data:image/png;base64,@@@")])},
        "oversized_media": {**ok, "messages": user([image_part("data:image/png;base64," + "A" * 300_000)])},
        "body_too_large": {**ok, "messages": user("red " * 120_000)},
        "prompt_too_long": {**ok, "messages": user("describe the picture " * 60)},
        "max_tokens_over_limit": {**ok, "max_tokens": 65, "messages": user("hi")},
        "max_tokens_past_context": {**ok, "max_tokens": 64, "messages": user("describe the picture " * 35)},
        "remote_refused": {**ok, "messages": user([image_part("http://127.0.0.1:9/red.png")])},
        "outside_media_root": {**ok, "messages": user([image_part(str(media_dir.parent / "x.png"))])},
        "unsupported_part": {**ok, "messages": user([{"type": "input_audio", "input_audio": {}}])},
        "media_part_without_url": {**ok, "messages": user([{"type": "image_url", "image_url": urls["red"]}])},
        "modality_the_model_lacks": {
            **ok,
            "messages": user([{"type": "depth_url", "depth_url": {"url": urls["red"]}}]),
        },
        "ends_with_assistant": {**ok, "messages": [*user([media]), {"role": "assistant", "content": "red"}]},
        "wrong_field_type": {**ok, "temperature": "hot", "messages": user("hi")},
    }
    got, text = post(
        server, bodies.get(case), raw=b'{"model": "tiny", "messages": [' if case == "malformed_json" else None
    )
    error = json.loads(text)["error"]
    assert (got, error["code"]) == (status, code), error
    assert error["message"] and error["type"] in {"invalid_request_error", "not_found_error", "permission_error"}
    assert ask(server.client(), [text_part("answer yes or no")], max_tokens=2).choices[0].message.content


def test_openai_client_raises_its_own_error_classes(server):
    with pytest.raises(openai.NotFoundError) as unknown:
        server.client().chat.completions.create(model="gpt-4o", messages=user("hi"))
    assert unknown.value.body["code"] == "model_not_found"
    with pytest.raises(openai.BadRequestError, match="n=2"):
        server.client().chat.completions.create(model=MODEL, messages=user("hi"), n=2)


def test_local_files_under_the_media_root(server, session, media_dir):
    by_path = ask(server.client(), [text_part(QUESTION), image_part("red.png")])
    by_file_url = ask(server.client(), [text_part(QUESTION), image_part((media_dir / "red.png").as_uri())])
    answer, _ = expected_answer(session, [{"from": "human", "value": "<image>\n" + QUESTION}],
                                [("image", media_dir / "red.png")], TOKENS)  # fmt: skip
    assert by_path.choices[0].message.content == by_file_url.choices[0].message.content == answer
    with pytest.raises(openai.PermissionDeniedError, match="outside"):
        ask(server.client(), [text_part(QUESTION), image_part("../" + media_dir.name + "/../escape.png")])


def test_api_key(session):
    live = LiveServer(session, api_key="s3cret")
    try:
        with pytest.raises(openai.AuthenticationError):
            live.client("wrong").models.list()
        with pytest.raises(openai.AuthenticationError):
            ask(live.client("wrong"), "hi")
        assert [m.id for m in live.client("s3cret").models.list()] == [MODEL]
        assert ask(live.client("s3cret"), "answer yes or no", max_tokens=2).choices[0].message.content
    finally:
        live.stop()


def test_remote_media_when_allowed(session, media_dir):
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(media_dir))
    handler.log_message = lambda *args: None
    files = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=files.serve_forever, daemon=True).start()
    live = LiveServer(session, ServeLimits(MediaPolicy(allow_remote=True)))
    try:
        base = f"http://127.0.0.1:{files.server_address[1]}"
        reply = ask(live.client(), [text_part(QUESTION), video_part(f"{base}/right.mp4")])
        with pytest.raises(openai.BadRequestError, match="cannot fetch"):
            ask(live.client(), [text_part(QUESTION), video_part(f"{base}/missing.mp4")])
    finally:
        live.stop()
        files.shutdown()
    answer, _ = expected_answer(session, [{"from": "human", "value": "<video>\n" + QUESTION}],
                                [("video", media_dir / "right.mp4")], TOKENS)  # fmt: skip
    assert reply.choices[0].message.content == answer
