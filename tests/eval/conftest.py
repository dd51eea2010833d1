"""A real HTTP server on 127.0.0.1 that answers like the OpenAI chat-completions API, for judge tests."""

from __future__ import annotations

import json
import re
import threading
import time
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

_FIELDS = re.compile(r"Question: (.*)\nCorrect Answer: (.*)\nPredicted Answer: (.*)\n\n", re.DOTALL)


def default_reply(question: str, answer: str, prediction: str) -> str:
    """Deterministic verdict: 'yes'/4 when the answer is in the prediction, else 'no'/1."""
    if answer.lower() in prediction.lower():
        return "{'pred': 'yes', 'score': 4}"
    return "{'pred': 'no', 'score': 1}"


class ChatServer:
    """Records every request; ``script`` holds actions for the next requests, then ``default_reply`` answers.

    Actions: ``("status", code, retry_after_or_None)``, ``("content", any JSON value)``, ``("body", bytes)`` (a
    200 reply with that body) or ``("delay", seconds)`` (the default reply, that much later).
    """

    def __init__(self) -> None:
        self.requests: list[dict] = []
        self.script: deque = deque()
        self.lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep test output clean
                pass

            def do_POST(self):  # noqa: N802 (http.server's naming)
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with server.lock:
                    server.requests.append({"path": self.path, "headers": dict(self.headers), "body": body})
                    action = server.script.popleft() if server.script else None
                if action and action[0] == "status":
                    self.send_response(action[1])
                    if action[2] is not None:
                        self.send_header("Retry-After", str(action[2]))
                    self.send_header("Content-Length", "2")
                    self.end_headers()
                    self.wfile.write(b"{}")
                    return
                if action and action[0] == "body":
                    self.send_response(200)
                    self.send_header("Content-Length", str(len(action[1])))
                    self.end_headers()
                    self.wfile.write(action[1])
                    return
                if action and action[0] == "delay":
                    time.sleep(action[1])
                if action and action[0] == "content":
                    content = action[1]
                else:
                    content = default_reply(*_FIELDS.search(body["messages"][1]["content"]).groups())
                reply = {"id": "x", "object": "chat.completion", "model": body["model"],
                         "choices": [{"index": 0, "message": {"role": "assistant", "content": content}}]}  # fmt: skip
                data = json.dumps(reply).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.handle_error = lambda request, address: None  # a client that gave up (a timeout test) is fine
        self.base_url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    def __enter__(self) -> ChatServer:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def chat_server():
    with ChatServer() as server:
        yield server


def _jsonl(path, rows):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def write_eval_files(root):
    """Small inputs for every protocol, under the names that docs/evaluation.md uses."""
    choices = ["red", "green", "blue", "yellow"]
    _jsonl(root / "synthetic_preds.jsonl", [
        {"key": "s0", "question_type": "color", "modality": "image", "choices": choices, "answer": "red",
         "prediction": "red"},
        {"key": "s1", "question_type": "color", "modality": "video", "choices": choices, "answer": "blue",
         "prediction": "green"},
        {"key": "s2", "question_type": "color", "modality": "video", "choices": choices, "answer": "blue",
         "prediction": "Blue."},
    ])  # fmt: skip
    pope = {"adversarial": ["Yes.", "No"], "popular": ["yes", "yes, there is"], "random": ["No, not", "no"]}
    preds = []
    for c, (category, texts) in enumerate(pope.items()):
        ids = [2 * c + 1, 2 * c + 2]
        _jsonl(root / "pope" / f"coco_pope_{category}.json", [
            {"question_id": ids[0], "image": "a.jpg", "text": "Is there a cat in the image?", "label": "yes"},
            {"question_id": ids[1], "image": "b.jpg", "text": "Is there a dog in the image?", "label": "no"},
        ])  # fmt: skip
        preds += [{"key": str(i), "question_id": i, "prediction": t} for i, t in zip(ids, texts)]
    _jsonl(root / "pope_preds.jsonl", preds)
    (root / "vqa_annotations.json").write_text(json.dumps([
        {"question_id": 1, "answer_type": "yes/no", "answers": ["yes"] * 10},
        {"question_id": 2, "answer_type": "other", "answers": ["red"] * 3 + ["blue"] * 7},
    ]))  # fmt: skip
    _jsonl(root / "vqa_preds.jsonl", [{"key": "1", "question_id": 1, "prediction": "Yes"},
                                      {"key": "2", "question_id": 2, "prediction": "red"}])  # fmt: skip
    msvd = root / "MSVD_Zero_Shot_QA"
    msvd.mkdir(parents=True, exist_ok=True)
    qa = [("what is the man doing?", "dancing", "the man is dancing"), ("how many dogs are there?", "two", "three"),
          ("what color is the car?", "red", "red")]  # fmt: skip
    (msvd / "test_q.json").write_text(json.dumps(
        [{"video_name": f"vid{i}", "question": q, "question_id": f"v_{i}"} for i, (q, _, _) in enumerate(qa)]
    ))  # fmt: skip
    (msvd / "test_a.json").write_text(json.dumps(
        [{"answer": a, "type": 0, "question_id": f"v_{i}"} for i, (_, a, _) in enumerate(qa)]
    ))  # fmt: skip
    _jsonl(root / "msvd_preds.jsonl", [{"key": f"v_{i}", "question": q, "prediction": p}
                                       for i, (q, _, p) in enumerate(qa)])  # fmt: skip
    return root


@pytest.fixture
def eval_files(tmp_path):
    return write_eval_files(tmp_path)
