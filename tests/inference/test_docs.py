"""Every command and snippet of docs/inference.md runs (paths swapped for the test's checkpoint and files)."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from lvlm.apps.predict import main as predict_main
from lvlm.data.shards import ShardWriter

DOC = Path(__file__).parents[2] / "docs" / "inference.md"


def blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", DOC.read_text(), flags=re.S)


def commands(prefix: str) -> list[list[str]]:
    lines = [line for block in blocks("bash") for line in block.splitlines() if line.startswith(prefix)]
    return [shlex.split(line) for line in lines]


def swap(argv: list[str], paths: dict[str, str]) -> list[str]:
    return [paths.get(arg, arg) for arg in argv]


@pytest.fixture(scope="module")
def paths(checkpoint_dir, questions_file, media_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("docs")
    with ShardWriter(str(out / "val-%06d.tar"), max_count=1) as writer:
        for i, (name, member) in enumerate([("red.png", "png"), ("right.mp4", "mp4")]):
            kind = "image" if member == "png" else "video"
            turns = [{"from": "human", "value": f"<{kind}>\ndescribe"}, {"from": "gpt", "value": "a square"}]
            writer.write(
                {
                    "__key__": f"s{i}",
                    "json": json.dumps({"conversations": turns}).encode(),
                    member: (media_dir / name).read_bytes(),
                }
            )
    return {
        "CKPT": str(checkpoint_dir),
        "questions.json": str(questions_file),
        "predictions.jsonl": str(out / "predictions.jsonl"),
        "val-{000000..000001}.tar": str(out / "val-{000000..000001}.tar"),
        "red.png": str(media_dir / "red.png"),
        "right.mp4": str(media_dir / "right.mp4"),
    }


def run_predict(argv: list[str], paths: dict[str, str], out: str, through_lvlm: bool = False) -> list[str]:
    paths = paths | {"predictions.jsonl": out}
    args = [*swap(argv[2:], paths), "--max-new-tokens", "3"]
    if through_lvlm:  # the `lvlm` entry point itself: `predict` without `-c` is batched generation
        from lvlm.apps.cli import main as lvlm_main

        with pytest.raises(SystemExit) as done:
            lvlm_main(["predict", *args])
        assert done.value.code == 0
    else:
        assert predict_main(args) == 0
    return Path(out).read_text().splitlines()


def test_predict_commands_one_and_two_processes_agree(paths, capsys):
    one, two, shards = commands("lvlm predict")
    assert "--num-processes" in two and "--shards" in shards
    single = run_predict(one, paths, paths["predictions.jsonl"], through_lvlm=True)
    assert [json.loads(line)["key"] for line in single] == ["q0", "q1", "q3", "q4", "q6", "q7"]
    merged = run_predict(two, paths, paths["predictions.jsonl"] + ".two.jsonl")
    assert merged == single  # the same file, line for line
    assert not list(Path(paths["predictions.jsonl"]).parent.glob("*.partial"))  # removed once complete
    err = capsys.readouterr().err
    assert err.count("(key q2): missing_file") == 2 and err.count("(key q5): undecodable_media") == 2
    keys = [json.loads(line)["key"] for line in run_predict(shards, paths, paths["predictions.jsonl"] + ".shards")]
    assert keys == ["s0", "s1"]


@pytest.mark.slow
def test_torchrun_command(paths):
    (argv,) = commands("torchrun")
    env = os.environ | {"OMP_NUM_THREADS": "1"}
    torchrun = str(Path(sys.executable).with_name("torchrun"))
    paths = paths | {"predictions.jsonl": paths["predictions.jsonl"] + ".torchrun"}
    argv = [torchrun, "--standalone", *swap(argv[1:], paths), "--max-new-tokens", "3"]
    done = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=240)
    assert done.returncode == 0, done.stderr[-3000:]
    keys = [json.loads(line)["key"] for line in Path(paths["predictions.jsonl"]).read_text().splitlines()]
    assert keys == ["q0", "q1", "q3", "q4", "q6", "q7"]


def test_chat_command_parses(paths):
    from lvlm.apps.chat import Chat
    from lvlm.apps.command import parse_command

    (argv,) = commands("lvlm chat")
    args = parse_command(Chat, swap(argv[2:], paths))
    assert (args.image, args.video, args.temperature) == ([paths["red.png"]], [paths["right.mp4"]], 0.0)


def test_python_snippet(paths, capsys):
    (code,) = blocks("python")
    for name in ("CKPT", "red.png"):
        code = code.replace(f'"{name}"', repr(paths[name]))
    scope: dict = {}
    exec(compile(code, str(DOC), "exec"), scope)
    assert scope["records"][0]["key"] == "q0" and isinstance(scope["records"][0]["prediction"], str)
    assert capsys.readouterr().out.strip() != ""
