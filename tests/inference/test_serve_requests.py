"""OpenAI messages → lvlm turns (markers placed as lvlm chat/predict place them), settings and refusals."""

from __future__ import annotations

import pytest

from lvlm.inference.serve_errors import ApiError
from lvlm.inference.serve_requests import ServeLimits, check_frames, parse_request

LIMITS = ServeLimits(max_tokens=100, max_media_items=3, max_frames=10, default_temperature=0.2)


def image(url="data:image/png;base64,AA=="):
    return {"type": "image_url", "image_url": {"url": url, "detail": "auto"}}


def video(url="data:video/mp4;base64,AA=="):
    return {"type": "video_url", "video_url": {"url": url}}


def body(messages, **fields):
    return {"model": "m", "messages": messages, **fields}


def test_media_markers_go_first_videos_before_images():
    content = [{"type": "text", "text": "what happens?"}, image(), video(), image("b.png")]
    job = parse_request(body([{"role": "user", "content": content}]), LIMITS)
    assert job.turns == [{"from": "human", "value": "<video><image><image>\nwhat happens?"}]
    assert [(m.modality, m.url, m.param) for m in job.media][1:] == [
        ("video", "data:video/mp4;base64,AA==", "messages[0].content[2]"),
        ("image", "b.png", "messages[0].content[3]"),
    ]


def test_system_history_and_merged_messages():
    messages = [
        {"role": "system", "content": "be brief"},
        {"role": "assistant", "content": "hello!"},  # a greeting before any question is dropped
        {"role": "user", "content": [image(), {"type": "text", "text": "colour?"}]},
        {"role": "assistant", "content": [{"type": "text", "text": "red"}]},
        {"role": "user", "content": "and the shape?"},
        {"role": "user", "content": "one word"},
    ]
    job = parse_request(body(messages, stop="\n", max_tokens=5, seed=3), LIMITS)
    assert job.system == "be brief"
    assert job.turns == [
        {"from": "human", "value": "<image>\ncolour?"},
        {"from": "gpt", "value": "red"},
        {"from": "human", "value": "and the shape?\none word"},
    ]
    assert job.stop == ["\n"] and job.explicit_max_tokens
    assert (job.settings.max_new_tokens, job.settings.temperature, job.settings.seed) == (5, 0.2, 3)


def test_defaults_come_from_the_limits():
    job = parse_request(body([{"role": "user", "content": "hi"}]), LIMITS)
    assert (job.settings.max_new_tokens, job.explicit_max_tokens, job.stream) == (100, False, False)


@pytest.mark.parametrize(
    ("fields", "messages", "code", "param"),
    [
        ({"n": 3}, None, "unsupported_n", "n"),
        ({"max_tokens": 101}, None, "max_tokens_too_large", "max_tokens"),
        ({"top_p": 0}, None, "invalid_request", "top_p"),
        ({}, [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}], "invalid_request", "messages"),
        ({}, [{"role": "tool", "content": "x"}], "invalid_request", "messages[0].role"),
        ({}, [{"role": "user", "content": [image()] * 4}], "too_many_media", "messages"),
        ({}, [{"role": "assistant", "content": [image()]}, {"role": "user", "content": "q"}], "invalid_request",
         "messages[0].content"),
        ({}, [], "invalid_request", "messages"),
    ],
)  # fmt: skip
def test_refusals_name_the_field(fields, messages, code, param):
    with pytest.raises(ApiError) as refused:
        parse_request(body(messages if messages is not None else [{"role": "user", "content": "q"}], **fields), LIMITS)
    assert (refused.value.status, refused.value.code, refused.value.param) == (400, code, param)
    assert refused.value.body()["error"]["type"] == "invalid_request_error"


def test_frames_limit_counts_video_frames():
    job = parse_request(body([{"role": "user", "content": [video(), image(), image()]}]), LIMITS)
    check_frames(job.media, 8, LIMITS)  # 8 + 1 + 1 = 10
    with pytest.raises(ApiError, match="11 visual frames"):
        check_frames(job.media, 9, LIMITS)
