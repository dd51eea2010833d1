"""How every ``lvlm`` tool runs: a dataclass of typed settings, parsed by jsonargparse, then its ``run()``.

A command is a dataclass whose fields are its flags (its docstring's ``Attributes:`` give their help) and whose
``run()`` returns the exit status. jsonargparse builds the parser from it, so every command takes
``--config FILE`` (YAML of the same fields) and ``--print_config``, and checks each value against its type.

One flag style for every command: a field ``media_root`` is ``--media_root`` (jsonargparse's and LightningCLI's
spelling) and its dashed twin ``--media-root`` is the same flag; a bool flag alone means true (``--overwrite``);
a list flag takes one or more values and may repeat (``--shards a.tar b.tar``, ``--image a.jpg --image b.jpg``),
or a JSON list. A mistake, on the command line or in a ``--config`` file, is a :class:`UserError` naming the
file and field (``lvlm`` prints it as one line and exits 2).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import types
import typing
from collections.abc import Callable
from typing import Any, Protocol

from jsonargparse import ArgumentParser, Namespace

from lvlm.apps.recipe_errors import describe
from lvlm.core.errors import UserError


class Command(Protocol):
    """A dataclass of a command's settings that runs it."""

    def run(self) -> int: ...


def build_parser(command: type, prog: str, positional: str | None = None) -> ArgumentParser:
    """The jsonargparse parser of ``command``'s fields (``positional``: the one field given without a flag)."""
    parser = ArgumentParser(prog=prog, description=_summary(command), exit_on_error=False)
    parser.add_argument("--config", action="config", help="a YAML file of these settings (--print_config writes one)")
    parser.add_class_arguments(command, skip={positional} if positional else None, sub_configs=True)
    if positional is not None:
        (item,) = typing.get_args(typing.get_type_hints(command)[positional])  # a positional is a list[...]
        parser.add_argument(positional, nargs="+", type=item, help=_field_help(command, positional))
    _add_dashed_twins(parser)
    return parser


def build_subcommands_parser(commands: dict[str, type], prog: str, dest: str) -> ArgumentParser:
    """A parser whose first argument picks one of ``commands`` (``lvlm eval pope ...``), stored under ``dest``."""
    parser = ArgumentParser(prog=prog, exit_on_error=False)
    subcommands = parser.add_subcommands(dest=dest, required=True)
    for name, command in commands.items():
        subcommands.add_subcommand(name, build_parser(command, f"{prog} {name}"), help=_summary(command))
    return parser


def parse(parser: ArgumentParser, command: type, argv: list[str]) -> Namespace:
    """``argv`` parsed (dashed flags, lone bool flags and list values normalised); a mistake is a ``UserError``."""
    argv = normalise(parser, command, argv)
    try:
        return parser.parse_args(argv)
    except argparse.ArgumentError as err:
        raise UserError(_one_line(str(err), argv)) from None


def build(parser: ArgumentParser, command: type, config: Namespace) -> Any:
    """The ``command`` dataclass holding the parsed ``config`` (nested dataclasses built too)."""
    built = parser.instantiate(config)
    return command(**{field.name: built[field.name] for field in dataclasses.fields(command)})


def parse_command(command: type, argv: list[str] | None, prog: str = "lvlm", positional: str | None = None) -> Any:
    """The ``command`` dataclass that ``argv`` describes."""
    parser = build_parser(command, prog, positional)
    return build(parser, command, parse(parser, command, list(argv or [])))


def run(command: type, argv: list[str] | None, prog: str, positional: str | None = None) -> int:
    """Parse ``argv`` into ``command`` and run it; returns the exit status."""
    return parse_command(command, sys.argv[1:] if argv is None else argv, prog, positional).run()


def run_subcommand(commands: dict[str, type], argv: list[str] | None, prog: str, dest: str) -> int:
    """Parse ``argv`` (``NAME [flags]``) into the command ``NAME`` of ``commands`` and run it."""
    parser = build_subcommands_parser(commands, prog, dest)
    argv = list(argv or [])
    name = next((arg for arg in argv if arg in commands), None)
    if name is None:
        return _parse_or_fail(parser, argv)
    config = parse(parser, commands[name], argv)
    subparser = parser._subcommands_action._name_parser_map[name]
    return build(subparser, commands[name], config[name]).run()


def exit_status(prog: str, body: Callable[[], int], debug: bool = False) -> int:
    """``body()``'s exit status; a ``UserError`` is one line on stderr and status 2 (with ``debug``: raised)."""
    try:
        return body()
    except UserError as error:
        if debug:
            raise
        # A mistake in the user's input: the message names the file or field; no traceback (--debug shows one).
        print(f"{prog}: {error}", file=sys.stderr)
        return 2


def _parse_or_fail(parser: ArgumentParser, argv: list[str]) -> int:
    """``--help`` (exit 0) or a missing or unknown subcommand (a ``UserError``)."""
    try:
        parser.parse_args(argv)
    except argparse.ArgumentError as err:
        raise UserError(_one_line(str(err), argv)) from None
    return 2


def normalise(parser: ArgumentParser, command: type, argv: list[str]) -> list[str]:
    """``argv`` in jsonargparse's terms: a lone bool flag gets ``true``; a list flag's values (several after it,
    or one per repetition) become one JSON list at its first place."""
    kinds = _field_kinds(command)
    options = _options(parser)
    out: list[str | list[str]] = []
    lists: dict[str, list[str]] = {}
    i = 0
    while i < len(argv):
        token = argv[i]
        i += 1
        action = options.get(token)
        kind = kinds.get(action.dest) if action is not None else None
        if kind == "bool" and (i == len(argv) or argv[i].lower() not in {"true", "false"}):
            out += [token, "true"]
        elif kind == "list" and i < len(argv) and not argv[i].startswith("["):
            if action.dest not in lists:
                lists[action.dest] = []
                out += [token, lists[action.dest]]  # filled by this and any later repetition
            while i < len(argv) and not argv[i].startswith("--"):
                lists[action.dest].append(argv[i])
                i += 1
        else:
            out.append(token)
    return [json.dumps(token) if isinstance(token, list) else token for token in out]


def _options(parser: ArgumentParser) -> dict[str, argparse.Action]:
    """Every option string of ``parser`` (a subcommand's included) -> its action."""
    found = dict(parser._option_string_actions)
    action = getattr(parser, "_subcommands_action", None)
    for subparser in action._name_parser_map.values() if action is not None else ():
        found |= _options(subparser)
    return found


def _field_kinds(command: type) -> dict[str, str]:
    """``field -> "bool" | "list"`` for the fields whose flags take no value or several values."""
    kinds = {}
    for name, hint in typing.get_type_hints(command).items():
        args = [arg for arg in typing.get_args(hint) if arg is not type(None)]
        if typing.get_origin(hint) in {typing.Union, types.UnionType} and len(args) == 1:
            hint = args[0]
        if hint is bool:
            kinds[name] = "bool"
        elif typing.get_origin(hint) is list:
            kinds[name] = "list"
    return kinds


def _add_dashed_twins(parser: ArgumentParser) -> None:
    """``--media-root`` for ``--media_root``: the same action under the dashed spelling."""
    for action in list(parser._actions):
        for option in list(action.option_strings):
            twin = option.replace("_", "-")
            if option.startswith("--") and twin not in parser._option_string_actions:
                action.option_strings.append(twin)
                parser._option_string_actions[twin] = action


def _one_line(message: str, argv: list[str]) -> str:
    if required := message.startswith("the following arguments are required: ") and message.split(": ", 1)[1]:
        return f"missing {required} (required)"
    if message.startswith(("unrecognized arguments", "argument ", "expected one of")):
        return message.splitlines()[0]
    return describe(message, argv).replace("(not an argument of its class; lvlm fit --help lists the keys)",
                                           "(--help lists the settings)")  # fmt: skip


def _summary(command: type) -> str:
    return (command.__doc__ or "").strip().split("\n\n")[0]


def _field_help(command: type, name: str) -> str | None:
    for line in (command.__doc__ or "").splitlines():
        if line.strip().startswith(f"{name}:"):
            return line.strip().split(":", 1)[1].strip()
    return None
