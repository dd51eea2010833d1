"""The real ``lvlm serve`` command in its own process: the README's curl and openai examples, the command of
docs/inference.md, and SIGTERM finishing a stream in flight before the process exits 0."""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import subprocess
import sys
import threading
from pathlib import Path

import openai
import pytest

from lvlm.apps.command import parse_command
from lvlm.apps.serve import Serve
from tests.apps.serve_fixtures import expected_answer

ROOT = Path(__file__).resolve().parents[2]
LVLM = str(Path(sys.executable).with_name("lvlm"))
README_URL = "http://127.0.0.1:8000"


def blocks(path: Path, language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", path.read_text(), flags=re.S)


def readme_commands() -> tuple[str, str]:
    (block,) = [b for b in blocks(ROOT / "README.md", "bash") if "lvlm serve" in b]
    serve, curl = block.strip().splitlines()
    return serve, curl


@pytest.fixture(scope="module")
def served(checkpoint_dir, media_dir):
    serve, _ = readme_commands()
    paths = {"quickstart/model": str(checkpoint_dir), "media": str(media_dir)}
    # --port 0: a free port; worker processes are tested in tests/inference/test_serve_workers.py (slow to spawn)
    argv = [LVLM, *[paths.get(arg, arg) for arg in shlex.split(serve)[1:]], "--port", "0", "--prepare-workers", "0"]
    env = os.environ | {"HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    first = proc.stdout.readline()
    if "http://" not in first:
        proc.kill()
        pytest.fail(f"lvlm serve did not start: {first}{proc.stderr.read()}")
    yield proc, re.search(r"(http://\S+)/v1", first).group(1)
    if proc.poll() is None:
        proc.kill()
        proc.wait()


def test_readme_curl_example(served, session, media_dir):
    _, url = served
    _, curl = readme_commands()
    done = subprocess.run(["bash", "-c", curl.replace(README_URL, url)], capture_output=True, text=True, timeout=60)
    reply = json.loads(done.stdout)
    question = json.loads(shlex.split(curl)[-1])["messages"][0]["content"][0]["text"]
    answer, _ = expected_answer(session, [{"from": "human", "value": "<image>\n" + question}],
                                [("image", media_dir / "red.png")], 32)  # fmt: skip
    assert reply["model"] == "lvlm" and reply["choices"][0]["message"]["content"] == answer


def test_readme_openai_example(served, session, media_dir, capsys):
    _, url = served
    (code,) = [b for b in blocks(ROOT / "README.md", "python") if "from openai import OpenAI" in b]
    code = code.replace(README_URL, url).replace('"media/right.mp4"', repr(str(media_dir / "right.mp4")))
    exec(compile(code, "README.md", "exec"), {})
    answer, _ = expected_answer(session, [{"from": "human", "value": "<video>\nWhere does the square move?"}],
                                [("video", media_dir / "right.mp4")], 32)  # fmt: skip
    assert capsys.readouterr().out == answer


def test_docs_command_parses(media_dir):
    doc = ROOT / "docs" / "inference.md"
    (line,) = [ln for b in blocks(doc, "bash") for ln in b.splitlines() if ln.startswith("lvlm serve")]
    args = parse_command(Serve, shlex.split(line)[2:])
    assert (args.model, args.host, args.port, args.api_key_env) == ("CKPT", "127.0.0.1", 8000, "LVLM_API_KEY")
    assert args.media_root == Path("media") and not args.allow_remote_media


def test_sigterm_finishes_the_stream_in_flight(served):
    proc, url = served
    client = openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0, timeout=120)
    messages = [{"role": "user", "content": "describe this picture"}]
    whole = client.chat.completions.create(model="lvlm", messages=messages, max_tokens=100, temperature=0)
    assert whole.usage.completion_tokens > 10  # long enough to be cut short if shutdown did not wait
    pieces, signalled_at = [], threading.Event()
    for chunk in client.chat.completions.create(
        model="lvlm", messages=messages, max_tokens=100, temperature=0, stream=True
    ):
        if chunk.choices and chunk.choices[0].delta.content:
            pieces.append(chunk.choices[0].delta.content)
            if not signalled_at.is_set():
                proc.send_signal(signal.SIGTERM)
                signalled_at.set()
        finish = chunk.choices[0].finish_reason if chunk.choices else None
    assert "".join(pieces) == whole.choices[0].message.content and finish == whole.choices[0].finish_reason
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0 and "lvlm serve: stopped after" in out


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--api-key-env", "LVLM_TEST_UNSET_KEY"], "--api-key-env LVLM_TEST_UNSET_KEY: that environment variable is"),
        (["--media-root", "/no/such/folder"], "--media-root /no/such/folder: no such folder"),
    ],
)
def test_bad_options_exit_2_before_loading(checkpoint_dir, flags, message):
    env = {k: v for k, v in os.environ.items() if k != "LVLM_TEST_UNSET_KEY"}
    done = subprocess.run([LVLM, "serve", "--model", str(checkpoint_dir), *flags], capture_output=True, text=True,
                          env=env, timeout=120)  # fmt: skip
    assert done.returncode == 2 and f"lvlm serve: {message}" in done.stderr
