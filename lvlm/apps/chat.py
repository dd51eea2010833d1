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

import argparse
import shlex
import sys
from pathlib import Path
from typing import Any

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


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="lvlm chat", description=__doc__.splitlines()[0])
    p.add_argument("--model", required=True, help="checkpoint directory (lvlm, transformers or original layout)")
    p.add_argument("--image", action="append", default=[], help="an image file (repeat for several)")
    p.add_argument("--video", action="append", default=[], help="a video file or a folder of frames (repeatable)")
    p.add_argument(
        "--media",
        action="append",
        default=[],
        metavar="NAME=PATH",
        help="a file of the model's modality NAME (any modality, a plugin's included: --media depth=scene.png)",
    )
    p.add_argument("--template", help="override the checkpoint's chat template (vicuna_v1, llava_v1, plain)")
    p.add_argument("--temperature", type=float, default=0.2, help="0 = greedy; default 0.2 (the original's)")
    p.add_argument("--top-p", type=float, default=1.0)
    p.add_argument("--max-new-tokens", type=int, default=512)
    p.add_argument("--seed", type=int, help="seed of the sampler")
    p.add_argument("--num-frames", type=int, help="frames per video (default: as many as training used)")
    p.add_argument(
        "--image-mode", choices=["pad", "crop"], help="override how images are fitted (default: as the model records)"
    )
    p.add_argument("--dtype", help="model dtype, e.g. bfloat16 (default: as saved)")
    p.add_argument("--device", default="cpu")
    return p


def attach_option(kind: str, path: str) -> str:
    """The option that attaches a file of modality ``kind``: ``--image``/``--video`` for the built-ins (the only
    modalities with an option of their own), ``--media NAME=PATH`` for any other; quoted for a shell."""
    return f"--{kind} {shlex.quote(path)}" if kind in {"image", "video"} else f"--media {shlex.quote(f'{kind}={path}')}"


def _fail(message: str) -> int:
    print(f"lvlm chat: error: {message}", file=sys.stderr)
    return 2


def load_chat_media(session: Any, files: list[tuple[str, str]]) -> list[tuple[str, Any]]:
    """Decode every attached file, videos first (the order their markers take in the first turn)."""
    from lvlm.inference.media_loading import load_media
    from lvlm.modalities.catalog import in_marker_order

    order = in_marker_order(dict.fromkeys(kind for kind, _ in files))
    files = sorted(files, key=lambda item: order.index(item[0]))
    return [(kind, load_media(session, kind, path, key=path)) for kind, path in files]


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

    conversation = Conversation(kinds=[kind for kind, _ in media])
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
        return Conversation(kinds=conversation.kinds)
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
    args = build_parser().parse_args(argv)
    files = [("image", path) for path in args.image] + [("video", path) for path in args.video]
    try:
        for kind, path in files:
            found = check_media_file(path)
            if found != kind:
                raise ValueError(f"{path} belongs to the {found} modality; attach it with {attach_option(found, path)}")
        for item in args.media:
            kind, sep, path = item.partition("=")
            if not sep or not kind or not path:
                raise ValueError(f"--media {item!r}: expected NAME=PATH (e.g. --media depth=scene.png)")
            if not Path(path).exists():
                raise MissingMediaFileError(path)
            files.append((kind, path))
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
        for kind, path in files:
            if kind not in session.modalities:
                takes = ", ".join(session.modalities)
                raise ValueError(f"--media {kind}={path}: this model has no {kind!r} modality; it takes {takes}")
        media = load_chat_media(session, files)
    except (MediaDecodeError, TemplateNotRecordedError, BadSampleError, FileNotFoundError, ValueError) as err:
        return _fail(str(err))  # an undecodable file, a bad checkpoint directory or option
    attached = ", ".join(f"{kind} {path}" for kind, path in files) or "no media"
    print(f"lvlm chat: {args.model} ({session.template.name} template, {attached}). /help lists the commands.")
    try:
        return chat_loop(session, media, settings)
    except KeyboardInterrupt:
        print()
        return 130


if __name__ == "__main__":
    sys.exit(main())
