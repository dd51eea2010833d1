"""Judge replies of any shape, slow judges and the judge deadline, through `lvlm eval` against a real HTTP server.

A reply whose `content` was a JSON object, or whose score was `1e999`, once crashed `lvlm eval` with a traceback;
the only timeout was a hard-coded 60 s per socket read. Every bad shape must end as an unjudged item, counted.
"""

from __future__ import annotations

import json
import time

import pytest

from tests.apps.cli_runner import lvlm

BAD_SHAPES = [
    ("content", {"pred": "yes", "score": 4}),  # an object, not text
    ("content", ["yes", 4]),
    ("content", 4),
    ("content", None),
    ("content", "{'pred': 'yes', 'score': 1e999}"),  # inf
    ("content", '{"pred": "yes", "score": NaN}'),
    ("content", "{'pred': 'yes', 'score': -1}"),
    ("content", "{'pred': 'yes', 'score': 'high'}"),
    ("content", "{'pred': 'yes'}"),
    ("content", "{'score': 3}"),
    ("content", "[" * 100_000),  # nesting no parser can follow
    ("content", ""),
    ("body", b"<html>502 Bad Gateway</html>"),
    ("body", b'{"error": {"message": "overloaded"}}'),
    ("body", b'{"choices": []}'),
    ("body", b'{"choices": [{"message": "yes"}]}'),
    ("body", b"\xff\xfe not utf-8"),
    ("body", b"[" * 100_000),
    ("body", b""),
    ("status", 400, None),
    ("status", 500, None),
    ("status", 429, 1),
]


def predictions(tmp_path, count: int):
    path = tmp_path / "preds.jsonl"
    row = {"answer": "red", "prediction": "a red car"}  # distinct questions: no item is a cache hit of another
    rows = [{"key": f"q{i}", "question": f"what colour is car {i}?", **row} for i in range(count)]
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def eval_args(server, tmp_path, count: int, *extra: str) -> list[str]:
    return ["eval", "video-qa", "--predictions", str(predictions(tmp_path, count)), "--judge", "openai",
            "--base-url", server.base_url, "--judge-model", "judge-7b", "--out", str(tmp_path / "out"),
            "--no-tensorboard", "--workers", "1", "--max-retries", "0", "--max-malformed", "0", *extra]  # fmt: skip


def items(tmp_path) -> list[dict]:
    return json.loads((tmp_path / "out" / "video-qa.json").read_text())["items"]


def test_every_bad_reply_shape_is_an_unjudged_item_never_a_traceback(chat_server, tmp_path, capsys):
    chat_server.script.extend(BAD_SHAPES)
    code, out = lvlm(capsys, *eval_args(chat_server, tmp_path, len(BAD_SHAPES) + 1))
    assert code == 3 and "Traceback" not in out, out
    assert f"{len(BAD_SHAPES)} of {len(BAD_SHAPES) + 1} items could not be judged" in out
    rows = items(tmp_path)
    assert [("error" in row) for row in rows] == [True] * len(BAD_SHAPES) + [False]  # the last: a good reply
    assert rows[-1]["pred"] == "yes" and rows[-1]["score"] == 4
    assert "HTTP 400" in rows[-4]["error"] and "HTTP 500" in rows[-3]["error"] and "HTTP 429" in rows[-2]["error"]
    assert len(chat_server.requests) == len(BAD_SHAPES) + 1


def test_good_replies_give_a_metric(chat_server, tmp_path, capsys):
    """The benign twin: the same command with a judge that answers well."""
    code, out = lvlm(capsys, *eval_args(chat_server, tmp_path, 3))
    assert code == 0, out
    result = json.loads((tmp_path / "out" / "video-qa.json").read_text())
    assert result["metrics"] == {"accuracy": 1.0, "score": 4.0} and result["counts"]["failed"] == 0


def test_a_slow_judge_times_out_per_request(chat_server, tmp_path, capsys):
    chat_server.script.extend([("delay", 3.0), ("delay", 0.05)])
    start = time.monotonic()
    code, out = lvlm(capsys, *eval_args(chat_server, tmp_path, 2, "--judge-timeout", "0.5", "--allow-partial"))
    assert time.monotonic() - start < 2.5
    assert code == 0 and "Traceback" not in out, out
    first, second = items(tmp_path)
    assert "timed out" in first["error"] and second["pred"] == "yes"


def test_the_judge_deadline_leaves_the_rest_unjudged_and_says_so(chat_server, tmp_path, capsys):
    chat_server.script.extend([("delay", 0.6)] * 6)
    start = time.monotonic()
    code, out = lvlm(capsys, *eval_args(chat_server, tmp_path, 6, "--judge-deadline", "1.0"))
    assert time.monotonic() - start < 3.0
    assert code == 3 and "Traceback" not in out, out
    result = json.loads((tmp_path / "out" / "video-qa.json").read_text())
    judged, late = result["counts"]["judged"], result["counts"]["past_deadline"]
    assert 1 <= judged <= 2 and late >= 3 and result["counts"]["failed"] == 6 - judged
    assert f"{late} item(s) were not judged: the --judge-deadline of 1 s had passed" in out
    assert "deadline" in result["items"][-1]["error"]
    assert len(chat_server.requests) < 6  # the items past the deadline send nothing


@pytest.mark.parametrize(("flag", "value"), [("--judge-timeout", "0"), ("--judge-deadline", "-5")])
def test_a_timeout_or_deadline_that_is_not_positive_is_refused(chat_server, tmp_path, capsys, flag, value):
    code, out = lvlm(capsys, *eval_args(chat_server, tmp_path, 1, flag, value))
    assert code == 2 and "must be a positive number of seconds" in out and "Traceback" not in out
