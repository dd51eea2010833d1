"""``lvlm chat`` driven through a pseudo-terminal: the real console script, a tiny checkpoint, two turns."""

from __future__ import annotations

import io
import os
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lvlm.apps.chat import chat_loop, chat_turn, main
from lvlm.inference.batch_generate import GenerationSettings, generate_batch
from lvlm.inference.media_loading import load_media
from lvlm.inference.prompts import Conversation, prepare_prompt

LVLM = str(Path(sys.executable).with_name("lvlm"))
NEW_TOKENS = 6


class Terminal:
    """A child process on a pseudo-terminal; ``expect`` reads until a text appears."""

    def __init__(self, argv: list[str]) -> None:
        self.master, slave = os.openpty()
        env = os.environ | {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
        self.proc = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, env=env, close_fds=True)
        os.close(slave)
        self.buffer = ""

    def expect(self, text: str, timeout: float = 60.0) -> str:
        """Everything read up to and including ``text`` (and drops it from the buffer)."""
        deadline = time.monotonic() + timeout
        while text not in self.buffer:
            left = deadline - time.monotonic()
            if left <= 0 or self.proc.poll() is not None and not select.select([self.master], [], [], 0.2)[0]:
                raise AssertionError(f"waited for {text!r}; the terminal shows:\n{self.buffer}")
            if select.select([self.master], [], [], min(left, 0.5))[0]:
                try:
                    self.buffer += os.read(self.master, 4096).decode(errors="replace").replace("\r\n", "\n")
                except OSError:  # the child closed the terminal
                    continue
        head, _, self.buffer = self.buffer.partition(text)
        return head + text

    def send(self, line: str) -> None:
        os.write(self.master, (line + "\n").encode())

    def close(self) -> int:
        code = self.proc.wait(timeout=30)
        os.close(self.master)
        return code


def expected_answers(session, media_dir, questions):
    media = [("video", load_media(session, "video", media_dir / "right.mp4"))]
    media.append(("image", load_media(session, "image", media_dir / "red.png")))
    chat, answers = Conversation(modalities=[session.modality("image"), session.modality("video")]), []
    for question in questions:
        sample = prepare_prompt(session, chat.ask(question), media)
        answers.append(generate_batch(session, [sample], GenerationSettings(NEW_TOKENS))[0])
        chat.record(question, answers[-1])
    return answers


def test_chat_streams_two_turns_and_survives_a_too_long_prompt(checkpoint_dir, media_dir, session):
    questions = ["what colour is the shape?", "where does it move?"]
    first, second = expected_answers(session, media_dir, questions)
    term = Terminal(
        [LVLM, "chat", "--model", str(checkpoint_dir), "--image", str(media_dir / "red.png"), "--video",
         str(media_dir / "right.mp4"), "--temperature", "0", "--max-new-tokens", str(NEW_TOKENS)]
    )  # fmt: skip
    try:
        assert "vicuna_v1 template" in term.expect("USER: ", timeout=120)
        term.send(questions[0])
        term.expect("ASSISTANT: ")
        assert term.expect("USER: ").removesuffix("USER: ").strip() == first
        term.send(" ".join(["describe the picture"] * 60))  # far more than the model's 160 positions
        assert "max_position_embeddings" in term.expect("USER: ")
        term.send(questions[1])
        term.expect("ASSISTANT: ")
        assert term.expect("USER: ").removesuffix("USER: ").strip() == second
        term.send("/exit")
    finally:
        code = term.close()
    assert code == 0


def test_reset_and_end_of_input(session, monkeypatch, capsys):
    monkeypatch.setattr("sys.stdin", io.StringIO("answer yes or no\n/reset\n"))  # then end of input (Ctrl-D)
    assert chat_loop(session, [], GenerationSettings(2)) == 0
    out = capsys.readouterr().out
    assert out.count("ASSISTANT: ") == 1 and "(history cleared)" in out


@pytest.mark.parametrize(
    ("flag", "name", "message"),
    [("--image", "nope.jpg", "media file not found"), ("--video", "notes.txt", "unsupported media format")],
)
def test_bad_file_exits_nonzero_naming_it(checkpoint_dir, tmp_path, flag, name, message):
    (tmp_path / "notes.txt").write_text("not media")
    done = subprocess.run(
        [LVLM, "chat", "--model", str(checkpoint_dir), flag, str(tmp_path / name)], capture_output=True, text=True
    )
    assert done.returncode == 2
    assert message in done.stderr and name in done.stderr
    if "unsupported" in message:
        assert "mp4" in done.stderr and "jpg" in done.stderr  # lists what is supported


def test_a_chat_turn_streams_its_answer_piece_by_piece(session, monkeypatch, capsys):
    writes: list[str] = []
    monkeypatch.setattr("sys.stdout.write", lambda text: writes.append(text) or len(text))
    conversation = Conversation(modalities=[])
    answer = chat_turn(session, conversation, [], "describe this clip", GenerationSettings(12))
    sample = prepare_prompt(session, Conversation(modalities=[]).ask("describe this clip"), [])
    assert answer == generate_batch(session, [sample], GenerationSettings(12))[0]
    assert "".join(writes) == f"ASSISTANT: {answer}\n"
    assert len([w for w in writes if w.strip()]) >= 3  # word by word, not at the end


def test_media_name_equals_path_attaches_any_modality_like_its_own_flag(checkpoint_dir, media_dir, monkeypatch, capsys):
    answers = []
    for attach in (["--image", str(media_dir / "red.png")], ["--media", f"image={media_dir / 'red.png'}"]):
        monkeypatch.setattr("sys.stdin", io.StringIO("what colour is the shape?\n"))
        common = ["--temperature", "0", "--max-new-tokens", str(NEW_TOKENS)]
        assert main(["--model", str(checkpoint_dir), *attach, *common]) == 0
        out = capsys.readouterr().out
        assert f"image {media_dir / 'red.png'}" in out
        answers.append(out.split("ASSISTANT: ")[1].split("USER:")[0].strip())
    assert answers[0] == answers[1] and answers[0]


@pytest.mark.parametrize(
    ("media", "message"),
    [("image", "expected NAME=PATH"), ("image=nope.png", "media file not found"), ("sound=a.wav", "not found")],
)
def test_bad_media_option_exits_2_naming_it(checkpoint_dir, media, message, capsys):
    assert main(["--model", str(checkpoint_dir), "--media", media]) == 2
    assert message in capsys.readouterr().err


def test_media_of_a_modality_the_model_lacks_exits_2_naming_the_ones_it_takes(checkpoint_dir, media_dir, capsys):
    """The benign twin is ``test_media_name_equals_path_attaches_any_modality_like_its_own_flag``."""
    assert main(["--model", str(checkpoint_dir), "--media", f"audio={media_dir / 'red.png'}"]) == 2
    assert capsys.readouterr().err.splitlines() == [
        f"lvlm chat: error: --media audio={media_dir / 'red.png'}: this model has no 'audio' modality; "
        "it takes image, video"
    ]


def test_slash_commands_stay_local(session, monkeypatch, capsys):
    import lvlm.apps.chat as chat

    asked: list[str] = []
    real_turn = chat.chat_turn

    def recording_turn(session, conversation, media, question, settings):
        asked.append(question)
        return real_turn(session, conversation, media, question, settings)

    monkeypatch.setattr(chat, "chat_turn", recording_turn)
    lines = ["/help", "/history", "/frobnicate now", "answer yes or no", "/history", "//what colour?", "/reset",
             "/history", "/exit", "never asked"]  # fmt: skip
    monkeypatch.setattr("sys.stdin", io.StringIO("\n".join(lines) + "\n"))
    assert chat_loop(session, [], GenerationSettings(2)) == 0
    out = capsys.readouterr().out
    assert asked == ["answer yes or no", "/what colour?"]  # only questions reach the model; // escapes a slash
    assert out.count("ASSISTANT: ") == 2 + 1  # two answers, and the one exchange /history shows
    assert "/reset     forget the conversation" in out and "unknown command /frobnicate" in out
    assert out.count("(no history yet)") == 2 and "USER: answer yes or no" in out
