"""Every flag an error or hint of ``lvlm serve``, ``chat`` and ``predict`` names exists in that command's parser.

The messages are the string literals of the command's modules (docstrings aside, which show other commands'
usage too); a flag is ``--name``. Chat's hint for attaching a file is built at run time, so it is checked by
parsing the command line it suggests with chat's own parser.
"""

from __future__ import annotations

import ast
import re
import shlex
from pathlib import Path

import pytest

import lvlm
from lvlm.apps import chat, predict, serve
from lvlm.apps.command import parse_command
from tests.apps.audio_modality import write_wav
from tests.core.plugin_fixtures import installed_plugin

PACKAGE = Path(lvlm.__file__).parent
FLAG = re.compile(r"(?<![\w-])--[a-z][a-z0-9-]*")
SHARED = ["inference/session.py", "inference/media_files.py", "inference/prompts.py"]
SOURCES = {
    "serve": (serve.build_parser, ["apps/serve.py", "inference/serve_*.py", *SHARED]),
    "chat": (chat.build_parser, ["apps/chat.py", *SHARED]),
    "predict": (
        predict.build_parser,
        ["apps/predict*.py", "inference/predict.py", "inference/question*.py", *SHARED],
    ),
}


def message_strings(path: Path) -> list[str]:
    """The string literals of a module, its docstrings left out (f-strings: their literal pieces)."""
    tree = ast.parse(path.read_text())
    docstrings = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                docstrings.add(id(first.value))
    return [
        node.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings
    ]


def named_flags(patterns: list[str]) -> dict[str, set[str]]:
    """``{flag: files naming it}`` over the files the patterns match under the package."""
    found: dict[str, set[str]] = {}
    files = sorted({path for pattern in patterns for path in PACKAGE.glob(pattern)})
    assert files, patterns
    for path in files:
        for text in message_strings(path):
            for flag in FLAG.findall(text):
                found.setdefault(flag, set()).add(path.relative_to(PACKAGE).as_posix())
    return found


@pytest.mark.parametrize("command", sorted(SOURCES))
def test_every_flag_a_message_names_exists(command):
    build_parser, patterns = SOURCES[command]
    options = set(build_parser()._option_string_actions)
    named = named_flags(patterns)
    assert named, "the scan finds the flags the messages name"
    missing = {flag: sorted(files) for flag, files in named.items() if flag not in options}
    assert not missing, f"lvlm {command}: messages name flags its parser lacks: {missing}"


def test_the_scan_sees_a_flag_in_an_error_message():
    # the benign twin of the check above: the serve messages name --max-media-mb (a real flag), and the scan
    # would have caught the old --max-media-bytes
    named = named_flags(["inference/serve_media.py"])
    assert "--max-media-mb" in named and "--max-media-bytes" not in named


def suggested_option(stderr: str) -> list[str]:
    """The option a chat error suggests (after "attach it with"), split as a shell would."""
    assert "attach it with " in stderr, stderr
    return shlex.split(stderr.split("attach it with ", 1)[1].strip())


def test_chat_attach_hint_for_a_built_in_modality_parses(media_dir, capsys):
    path = str(media_dir / "red.png")
    assert chat.main(["--model", "unused", "--video", path]) == 2
    suggestion = suggested_option(capsys.readouterr().err)
    args = parse_command(chat.Chat, ["--model", "m", *suggestion])
    assert args.image == [path] and args.video == [] and args.media == []


def test_chat_attach_hint_for_a_plugin_modality_uses_media(tmp_path, capsys):
    source = (Path(__file__).parent / "audio_modality.py").read_text()
    entry = "[lvlm.modalities]\naudio = lvlm_test_audio.modality:WavModality\n"
    with installed_plugin(tmp_path / "site", "lvlm_test_audio", {"modality": source}, entry):
        path = str(write_wav(tmp_path / "a tone.wav"))  # a space: the hint is quoted for a shell
        assert chat.main(["--model", "unused", "--image", path]) == 2
        err = capsys.readouterr().err
    assert "--audio" not in err
    suggestion = suggested_option(err)
    args = parse_command(chat.Chat, ["--model", "m", *suggestion])
    assert args.media == [f"audio={path}"] and args.image == [] and args.video == []
