"""Every command and Python snippet in docs/evaluation.md runs, on the small files of conftest.write_eval_files."""

import json
import re
import shlex
from pathlib import Path

import pytest

from lvlm.apps.eval import main
from lvlm.core.errors import UserError
from lvlm.eval.judges.prompt import prompt_hash

DOC = Path(__file__).resolve().parents[2] / "docs" / "evaluation.md"
DOC_URL = "http://127.0.0.1:8000/v1"


def blocks(language):
    return re.findall(rf"```{language}\n(.*?)```", DOC.read_text(), re.DOTALL)


def commands():
    text = "\n".join(blocks("bash")).replace("\\\n", " ")
    return [line.strip() for line in text.splitlines() if line.strip()]


def test_every_command_is_lvlm_eval():
    assert len(commands()) == 5
    assert all(c.startswith("lvlm eval ") for c in commands())


def test_doc_commands_run(eval_files, chat_server, monkeypatch):
    monkeypatch.chdir(eval_files)
    monkeypatch.setenv("JUDGE_API_KEY", "sk-local")
    for command in commands():
        argv = shlex.split(command.replace(DOC_URL, chat_server.base_url))[2:]
        assert main(argv) == 0, command
    judged = json.loads(Path("results/msvd-judged/video-qa.json").read_text())
    assert judged["config"]["judge"]["model"] == "Qwen2.5-7B-Instruct"
    assert Path("results/msvd-judged/judge-cache/judgments.jsonl").is_file()  # the path the docs name
    # "running the same command again with --overwrite sends no request"
    sent = len(chat_server.requests)
    assert main([*shlex.split(commands()[-1].replace(DOC_URL, chat_server.base_url))[2:], "--overwrite"]) == 0
    assert len(chat_server.requests) == sent


def test_doc_python_snippets_run(eval_files, monkeypatch, capsys):
    monkeypatch.chdir(eval_files)
    for snippet in blocks("python"):
        exec(compile(snippet, str(DOC), "exec"), {})
    assert Path("results/pope-api/pope.json").is_file()
    assert "question_type" in capsys.readouterr().out


def test_doc_states_the_current_prompt_hash():
    assert f"prompt hash `{prompt_hash()}`" in DOC.read_text()


def test_doc_error_example_is_real(eval_files, monkeypatch, capsys):
    monkeypatch.chdir(eval_files)
    lines = Path("pope_preds.jsonl").read_text().splitlines()
    record = json.loads(lines[2])
    del record["prediction"]
    lines[2] = json.dumps(record)
    Path("pope_preds.jsonl").write_text("\n".join(lines) + "\n")
    with pytest.raises(UserError) as error:  # `lvlm eval` prints it without a traceback and exits 2
        main(["pope", "--predictions", "pope_preds.jsonl", "--questions-dir", "pope", "--out", "r"])
    message = re.search(r"`(pope_preds.jsonl: 1 of .*?)`;", DOC.read_text()).group(1)
    assert str(error.value) == message
