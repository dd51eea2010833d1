"""The OpenAI-compatible judge against a real HTTP server on 127.0.0.1 (see conftest.py)."""

import json
import socket

import pytest

from lvlm.eval.judges import JudgeConfigError, OpenAICompatibleJudge, make_judge
from lvlm.eval.judges.prompt import SYSTEM_PROMPT, MalformedReply, parse_judge_reply, prompt_hash
from lvlm.eval.results import write_json
from lvlm.eval.video_qa import evaluate_video_qa

KEY_ENV, KEY = "LVLM_TEST_JUDGE_KEY", "sk-test-not-a-real-key"
RECORDS = [
    {"key": "0", "question": "what is the man doing?", "answer": "dancing", "prediction": "he is dancing"},
    {"key": "1", "question": "how many dogs are there?", "answer": "two", "prediction": "three"},
    {"key": "2", "question": "what color is the car?", "answer": "red", "prediction": "a red car"},
    {"key": "3", "question": "who sings?", "answer": "woman", "prediction": "a man"},
]
# the server says yes/4 when the answer is in the prediction, else no/1:
# yes, no, yes, no -> accuracy 2 / 4 = 0.5; score (4 + 1 + 4 + 1) / 4 = 2.5
EXPECTED = {"accuracy": 0.5, "score": 2.5}


def judge_for(server, tmp_path, sleeps, **options):
    options = {"cache_dir": tmp_path / "cache", "api_key_env": KEY_ENV, "seed": 1234, "base_delay": 0.01,
               "sleep": sleeps.append, **options}  # fmt: skip
    return make_judge("openai", base_url=server.base_url, model="judge-7b", **options)


@pytest.mark.parametrize(
    ("reply", "parsed"),
    [
        ("{'pred': 'yes', 'score': 4}", ("yes", 4)),
        ("{'pred': 'no', 'score': 4.8}", ("no", 4)),  # int() truncates, as in the original
        ('```json\n{"pred": "yes", "score": "3"}\n```', ("yes", 3)),
        ('{"pred": "Yes", "score": 5}', ("yes", 5)),
    ],
)
def test_parse_judge_reply(reply, parsed):
    assert parse_judge_reply(reply) == parsed


@pytest.mark.parametrize("reply", ["yes", "{'pred': 'maybe', 'score': 3}", "{'pred': 'yes', 'score': 'high'}",
                                   "{'pred': 'yes'}", "{'pred': 'yes', 'score': 9}"])  # fmt: skip
def test_malformed_replies(reply):
    with pytest.raises(MalformedReply):
        parse_judge_reply(reply)


def test_retries_malformed_cache_and_key(chat_server, tmp_path, monkeypatch):
    monkeypatch.setenv(KEY_ENV, KEY)
    chat_server.script.extend([("status", 429, 2), ("status", 503, None), ("content", "Sure! It matches.")])
    sleeps = []
    result = evaluate_video_qa(RECORDS, judge=judge_for(chat_server, tmp_path, sleeps))
    assert result.metrics == EXPECTED
    # item 0: 429 (waits Retry-After = 2 s), 503 (backoff 0.01 * 2**1 with jitter in [0.5, 1]), a malformed
    # reply, then its verdict; items 1-3: one request each
    assert len(chat_server.requests) == 7
    assert sleeps[0] == 2.0 and 0.01 <= sleeps[1] <= 0.02 and len(sleeps) == 2
    expected_counts = {"requests": 7, "retries": 2, "malformed": 1, "failed": 0, "judged": 4, "cache_hits": 0}
    assert {k: result.counts[k] for k in expected_counts} == expected_counts
    first = chat_server.requests[0]
    assert first["path"] == "/v1/chat/completions"
    assert first["headers"]["Authorization"] == f"Bearer {KEY}"
    body = first["body"]
    assert body["temperature"] == 0.0 and body["seed"] == 1234 and body["model"] == "judge-7b"
    assert body["messages"][0] == {"role": "system", "content": SYSTEM_PROMPT}
    judge_info = result.config["judge"]
    assert judge_info["base_url_host"] == chat_server.base_url.split("/")[2]
    assert judge_info["prompt_hash"] == prompt_hash() and judge_info["model"] == "judge-7b"
    out = write_json(result, tmp_path / "out" / "video-qa.json")
    assert KEY not in out.read_text() and KEY not in (tmp_path / "cache" / "judgments.jsonl").read_text()

    # a re-run with a new judge on the same cache sends nothing and gives identical numbers
    rerun = evaluate_video_qa(RECORDS, judge=judge_for(chat_server, tmp_path, sleeps, workers=4))
    assert len(chat_server.requests) == 7
    assert rerun.metrics == result.metrics
    assert rerun.counts["cache_hits"] == 4 and rerun.counts["requests"] == 0


def test_malformed_beyond_budget_is_a_counted_failure(chat_server, tmp_path):
    chat_server.script.extend([("content", "no idea")] * 3)
    judge = judge_for(chat_server, tmp_path, [], max_malformed=2)
    result = evaluate_video_qa(RECORDS, judge=judge, allow_partial=True)
    # item 0 fails after 3 malformed replies; items 1-3: no, yes, no -> accuracy 1/3, score (1 + 4 + 1) / 3 = 2
    assert result.counts["failed"] == 1 and result.counts["malformed"] == 3 and result.counts["judged"] == 3
    assert result.metrics == {"accuracy": pytest.approx(1 / 3), "score": 2.0} and result.status == "partial"
    assert result.rows[0][3] == "3/4"  # judged/total in the table
    assert "malformed 3 times" in result.items[0]["error"] and "pred" not in result.items[0]
    # a failure is not cached: the next run asks again
    rerun = evaluate_video_qa(RECORDS, judge=judge_for(chat_server, tmp_path, []))
    assert rerun.counts["cache_hits"] == 3 and rerun.counts["requests"] == 1 and rerun.metrics == EXPECTED


def test_server_errors_beyond_budget_and_no_key(chat_server, tmp_path, monkeypatch):
    monkeypatch.delenv(KEY_ENV, raising=False)
    chat_server.script.extend([("status", 503, None)] * 3)
    sleeps = []
    judge = judge_for(chat_server, tmp_path, sleeps, max_retries=2, cache_dir=None)
    result = evaluate_video_qa(RECORDS[:1], judge=judge)
    assert result.counts["failed"] == 1 and result.counts["requests"] == 3 and result.counts["retries"] == 2
    assert "Authorization" not in chat_server.requests[0]["headers"]
    # exponential: 0.01 * 2**0 and 0.01 * 2**1, each times a jitter in [0.5, 1]
    assert 0.005 <= sleeps[0] <= 0.01 and 0.01 <= sleeps[1] <= 0.02


def test_total_wait_is_bounded(chat_server, tmp_path):
    chat_server.script.extend([("status", 429, 30)] * 2)
    sleeps = []
    judge = judge_for(chat_server, tmp_path, sleeps, max_total_wait=45)
    assert evaluate_video_qa(RECORDS[:1], judge=judge).counts["failed"] == 1
    assert sleeps == [30.0]  # a second 30 s wait would pass the 45 s bound


def test_rejected_key_stops_everything(chat_server, tmp_path):
    chat_server.script.append(("status", 401, None))
    with pytest.raises(JudgeConfigError, match=f"HTTP 401.*{KEY_ENV}"):
        evaluate_video_qa(RECORDS, judge=judge_for(chat_server, tmp_path, []))


def test_connection_refused_is_retried_then_failed(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again before use: nothing listens there
    sleeps = []
    judge = OpenAICompatibleJudge(
        f"http://127.0.0.1:{port}/v1", "m", max_retries=2, base_delay=0.01, sleep=sleeps.append
    )
    result = evaluate_video_qa(RECORDS[:1], judge=judge)
    assert result.counts["failed"] == 1 and len(sleeps) == 2
    assert "URLError" in result.items[0]["error"]


def test_cache_file_survives_a_torn_last_line(chat_server, tmp_path):
    evaluate_video_qa(RECORDS, judge=judge_for(chat_server, tmp_path, []))
    cache_file = tmp_path / "cache" / "judgments.jsonl"
    lines = cache_file.read_text().splitlines()
    assert [json.loads(line)["pred"] for line in lines] == ["yes", "no", "yes", "no"]
    cache_file.write_text("\n".join(lines[:3]) + "\n" + lines[3][:20])  # a run killed mid-write
    rerun = evaluate_video_qa(RECORDS, judge=judge_for(chat_server, tmp_path, []))
    assert rerun.counts["cache_hits"] == 3 and rerun.metrics == EXPECTED
