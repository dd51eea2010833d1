"""``lvlm chat``: a multi-turn terminal chat with a checkpoint about its media (images, videos, ...); answers stream.

    lvlm chat --model CKPT --video clip.mp4
    lvlm chat --model CKPT --image a.jpg --image b.png --temperature 0 --max-new-tokens 256
    lvlm chat --model CKPT --media depth=scene.png      # any modality of the model, by name

Media attach to the first user turn (videos first, then images), as in the original CLI. The chat template is
the one recorded with the checkpoint; ``--template`` overrides it explicitly. A line starting with ``/`` is a
command for the chat itself, never sent to the model: ``/help``, ``/reset`` (forget the history; the media
stay), ``/history``, ``/exit`` (or end of input, Ctrl-D). ``//`` sends a question that starts with ``/``.
"""

from __future__ import annotations

import shlex
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from jsonargparse import ArgumentParser

from lvlm.apps import command
from lvlm.inference.media_files import MissingMediaFileError, UnsupportedMediaError, check_media_file

# torch, transformers and the model are imported only once the arguments and files are known to be good, so
# a mistyped path is reported at once.

EXIT_COMMANDS = {"/exit", "/quit"}
HELP = """commands (handled here, never sent to the model):
  /help      this list
  /reset     forget the conversation (the attached media stay)
  /history   show the conversation so far
  /exit      end the chat (also /quit or Ctrl-D)
  //text     ask "/text" (a question that starts with a slash)"""


@dataclass
class Chat:
    """A multi-turn terminal chat with a checkpoint about its media; answers stream.

    Attributes:
        model: checkpoint directory (lvlm, transformers or original layout).
        image: an image file (repeat for several).
        video: a video file or a folder of frames (repeatable).
        media: NAME=PATH, a file of the model's modality NAME (any modality, a plugin's included:
            --media depth=scene.png).
        template: override the checkpoint's chat template (vicuna_v1, llava_v1, plain).
        temperature: 0 = greedy; default 0.2 (the original's).
        top_p: nucleus sampling mass.
        max_new_tokens: longest answer in tokens.
        seed: seed of the sampler.
        num_frames: frames per video (default: as many as training used).
        image_mode: override how images are fitted (default: as the model records).
        dtype: model dtype, e.g. bfloat16 (default: as saved).
        device: cpu or cuda.
    """

    model: str
    image: list[str] = field(default_factory=list)
    video: list[str] = field(default_factory=list)
    media: list[str] = field(default_factory=list)
    template: str | None = None
    temperature: float = 0.2
    top_p: float = 1.0
    max_new_tokens: int = 512
    seed: int | None = None
    num_frames: int | None = None
    image_mode: Literal["pad", "crop"] | None = None
    dtype: str | None = None
    device: str = "cpu"

    def run(self) -> int:
        """Run ``lvlm chat``; returns the exit status (2 for a missing or unusable file or checkpoint)."""
        return chat(self)


def build_parser() -> ArgumentParser:
    """The parser of ``lvlm chat`` (jsonargparse, from :class:`Chat`)."""
    return command.build_parser(Chat, "lvlm chat")


def attach_option(modality: str, path: str) -> str:
    """The option that attaches a file of ``modality``: ``--image``/``--video`` for the built-ins (the only
    modalities with an option of their own), ``--media NAME=PATH`` for any other; quoted for a shell."""
    return (
        f"--{modality} {shlex.quote(path)}"
        if modality in {"image", "video"}
        else f"--media {shlex.quote(f'{modality}={path}')}"
    )


def _fail(message: str) -> int:
    print(f"lvlm chat: error: {message}", file=sys.stderr)
    return 2


def load_chat_media(session: Any, files: list[tuple[str, str]]) -> list[tuple[str, Any]]:
    """Decode every attached file, videos first (the order their markers take in the first turn)."""
    from lvlm.inference.media_files import load_media
    from lvlm.modalities.catalog import in_marker_order

    order = in_marker_order(dict.fromkeys(modality for modality, _ in files))
    files = sorted(files, key=lambda item: order.index(item[0]))
    return [(modality, load_media(session, modality, path, key=path)) for modality, path in files]


def chat_turn(session: Any, conversation: Any, media: list, question: str, settings: Any) -> str | None:
    """Ask one question; the answer streams to stdout. None (and a message) when the prompt does not fit."""
    from lvlm.data.sample_errors import SampleTooLongError
    from lvlm.inference.batch_generate import generate
    from lvlm.inference.prompts import prepare_prompt

    try:
        sample = prepare_prompt(session, conversation.ask(question), media)
    except SampleTooLongError as err:
        print(
            f"error: {err.detail}: this model has {session.max_length} positions (max_position_embeddings). "
            f"Ask a shorter question or /reset the history.",
            file=sys.stderr,
        )
        return None
    print("ASSISTANT: ", end="", flush=True)
    answer = generate(session, [sample], settings, on_text=lambda text: print(text, end="", flush=True))[0]
    print(flush=True)
    return answer.text


def chat_loop(session: Any, media: list, settings: Any) -> int:
    """Read questions until ``/exit`` or end of input; returns the exit status."""
    from lvlm.inference.prompts import Conversation

    conversation = Conversation(modalities=[session.modality(modality) for modality, _ in media])
    while True:
        try:
            question = input("USER: ").strip()
        except EOFError:
            print()
            return 0
        if question.startswith("/") and not question.startswith("//"):
            if question.split()[0] in EXIT_COMMANDS:
                return 0
            conversation = slash_command(question, conversation)
            continue
        question = question.removeprefix("/")
        if not question:
            continue
        answer = chat_turn(session, conversation, media, question, settings)
        if answer is not None:
            conversation.record(question, answer)


def slash_command(line: str, conversation: Any) -> Any:
    """Carry out a slash command other than ``/exit``; returns the conversation to go on with."""
    from lvlm.inference.prompts import Conversation

    command = line.split()[0]
    if command == "/reset":
        print("(history cleared)")
        return Conversation(modalities=conversation.modalities)
    if command == "/history":
        for turn in conversation.turns:
            print(f"{'USER' if turn['from'] == 'human' else 'ASSISTANT'}: {turn['value']}")
        if not conversation.turns:
            print("(no history yet)")
    elif command == "/help":
        print(HELP)
    else:
        print(f"unknown command {command}; /help lists the commands (// sends a question starting with /)")
    return conversation


def main(argv: list[str] | None = None) -> int:
    """Run ``lvlm chat``; returns the exit status (2 for a missing or unusable file or checkpoint)."""
    return command.run(Chat, argv, "lvlm chat")


def chat(args: Chat) -> int:
    """Check the files, load the checkpoint and the media, then chat until ``/exit``."""
    files = [("image", path) for path in args.image] + [("video", path) for path in args.video]
    try:
        for modality, path in files:
            found = check_media_file(path)
            if found != modality:
                raise ValueError(f"{path} belongs to the {found} modality; attach it with {attach_option(found, path)}")
        for item in args.media:
            modality, sep, path = item.partition("=")
            if not sep or not modality or not path:
                raise ValueError(f"--media {item!r}: expected NAME=PATH (e.g. --media depth=scene.png)")
            if not Path(path).exists():
                raise MissingMediaFileError(path)
            files.append((modality, path))
    except (MissingMediaFileError, UnsupportedMediaError, ValueError) as err:
        return _fail(str(err))
    from lvlm.data.decoding.errors import MediaDecodeError
    from lvlm.data.sample_errors import BadSampleError
    from lvlm.inference.batch_generate import GenerationSettings
    from lvlm.inference.session import TemplateNotRecordedError, load_session

    try:
        settings = GenerationSettings(args.max_new_tokens, args.temperature, args.top_p, args.seed)
        session = load_session(
            args.model,
            args.template,
            num_frames=args.num_frames,
            image_mode=args.image_mode,
            torch_dtype=args.dtype,
            device=args.device,
        )
        for modality, path in files:
            if modality not in session.modalities:
                takes = ", ".join(session.modalities)
                raise ValueError(
                    f"--media {modality}={path}: this model has no {modality!r} modality; it takes {takes}"
                )
        media = load_chat_media(session, files)
    except (MediaDecodeError, TemplateNotRecordedError, BadSampleError, FileNotFoundError, ValueError) as err:
        return _fail(str(err))  # an undecodable file, a bad checkpoint directory or option
    attached = ", ".join(f"{modality} {path}" for modality, path in files) or "no media"
    print(f"lvlm chat: {args.model} ({session.template.name} template, {attached}). /help lists the commands.")
    try:
        return chat_loop(session, media, settings)
    except KeyboardInterrupt:
        print()
        return 130


if __name__ == "__main__":
    sys.exit(main())
