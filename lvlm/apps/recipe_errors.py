"""A recipe mistake as one line: ``RECIPE_FILE: KEY: what is wrong``, never jsonargparse's usage block.

LightningCLI parses with ``exit_on_error=False``, so a bad recipe raises ``argparse.ArgumentError`` carrying
jsonargparse's nested explanation (``Parser key "model.parts.modalities": ... Option 'selct_layer' is not accepted``).
:func:`recipe_errors` turns it into a :class:`~lvlm.core.errors.UserError` that names the source that set the key
(the last ``-c`` file or command-line override holding it, as later sources win), the key's full dotted path in
that source, and the fault in words; ``lvlm`` prints it without a traceback.
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml

from lvlm.core.errors import UserError

COMMAND_LINE = "command line"
_ALIASES = {"optimizer": "model.optimisation.optimizer", "lr_scheduler": "model.optimisation.lr_scheduler"}
_NOISE = re.compile(r"^(Subtypes:|Errors:|Given value|Does not validate|- Expected a <class 'NoneType'>)")


@contextmanager
def recipe_errors(argv: list[str]) -> Iterator[None]:
    """Within: a parse error of the recipes and overrides in ``argv`` is raised as a one-line ``UserError``."""
    try:
        yield
    except argparse.ArgumentError as err:
        raise UserError(describe(str(err), argv)) from None


def describe(message: str, argv: list[str]) -> str:
    """``SOURCE: KEY: what is wrong`` for jsonargparse's ``message`` about the command line ``argv``."""
    if missing := re.search(r"File does not exist: '([^']*)'", message):
        return f"{missing[1]}: no such recipe file"
    if message.startswith("Problems parsing config") and (broken := _broken_yaml(argv)):
        return broken
    sources = _sources(argv)
    if required := re.match(r"the following arguments are required: (.*)", message):
        keys = ", ".join(key.split(".", 1)[-1] for key in required[1].split(", "))
        return f"{_last_file(sources)}: {keys}: required, but no recipe or override sets them"
    top, nested, option = _keys(message)
    lines = [line.strip() for line in message.splitlines()[1:] if line.strip() and not _NOISE.match(line.strip())]
    what, bad_value = _fault(lines, option, message)
    source, path = _locate(sources, top, nested, option, bad_value)
    return f"{source}: {path}: {what}"


def _broken_yaml(argv: list[str]) -> str | None:
    """``FILE: line N: not valid YAML: ...`` for the first ``-c`` file that does not parse."""
    for flag, value in zip(argv, argv[1:]):
        if flag in {"-c", "--config"} and Path(value).is_file():
            try:
                yaml.safe_load(Path(value).read_text())
            except yaml.YAMLError as err:
                mark = getattr(err, "problem_mark", None)
                where = f"line {mark.line + 1}: " if mark is not None else ""
                return f"{value}: {where}not valid YAML: {getattr(err, 'problem', None) or err}"
    return None


def _keys(message: str) -> tuple[str, list[str], str | None]:
    """The outer key, the key names nested inside it, and an unknown option's name (None for a fault in a value)."""
    unknown = re.search(r"(Group|Subcommand) '([^']+)' does not accept option '([^']+)'", message)
    if unknown:  # a group names its own key (``model``), a subcommand the full key
        key = f"{unknown[2]}.{unknown[3]}" if unknown[1] == "Group" else unknown[3]
        return key, [], key.rsplit(".", 1)[-1]
    required = re.search(r'Key "([^"]+)" is required', message)
    keys = re.findall(r'Parser key "([^"]+)"', message)
    top = required[1] if required else (keys[0] if keys else "?")
    option = re.search(r"Option '([^']+)' is not accepted", message)
    nested = [part for key in keys[1:] for part in key.split(".")]  # a group's field is ``sources.train``
    return top, nested, option[1] if option else None


def _fault(lines: list[str], option: str | None, message: str) -> tuple[str, str | None]:
    """The fault in words, and the offending value when one is named (a class path, a wrong value)."""
    if option is not None:
        return "unknown key (not an argument of its class; lvlm fit --help lists the keys)", None
    if "is required" in message:
        return "required, but no recipe or override sets it", None
    if absent := re.search(r"module '([\w.]+)' has no attribute '(\w+)'", message):
        return f"no class {absent[2]!r} in module {absent[1]!r}", f"{absent[1]}.{absent[2]}"
    if absent := re.search(r"No module named '([\w.]+)'", message):
        return f"no module {absent[1]!r} (a typo in the class path, or a package not installed)", None
    expected = [_type_name(m) for m in re.findall(r"Expected an? (.+?)(?:\. Got value: |$)", message, re.M)]
    expected = [name for name in expected if name != "None"]
    got = re.search(r"Got value: (.*)$", message, re.M) or re.search(r"Given value: (.*)$", message, re.M)
    if expected:
        value = got[1].strip() if got else None
        return f"expected {' or '.join(expected)}" + (f", got {value!r}" if value is not None else ""), value
    detail = lines[-1] if lines else message.splitlines()[0]
    return re.sub(r"\. Got value: .*$", "", detail.lstrip("- "))[:200], None


def _type_name(text: str) -> str:
    if literal := re.fullmatch(r"typing\.Literal\[(.*)\]", text.strip()):
        return f"one of {literal[1]}"
    if cls := re.fullmatch(r"<class '(?:builtins\.)?([\w.]+)'>", text.strip()):
        return "None" if cls[1] == "NoneType" else cls[1]
    return text.strip()


def _sources(argv: list[str]) -> list[tuple[str, dict[str, Any]]]:
    """``(name, {dotted key: value})`` of every ``-c`` file and override, in command-line order."""
    found: list[tuple[str, dict[str, Any]]] = []
    i = 0
    while i < len(argv):
        flag, has_value, inline = argv[i].partition("=")
        value = inline if has_value else (argv[i + 1] if i + 1 < len(argv) else None)
        takes_value = has_value or (value is not None and not value.startswith("--") and value != "-c")
        i += 1 if has_value or not takes_value else 2
        if flag in {"-c", "--config"} and value is not None:
            is_file = Path(value).is_file()
            data = _load(Path(value).read_text() if is_file else value)
            found.append((value if is_file else COMMAND_LINE, _flatten(data)))
        elif flag.startswith("--") and takes_value:
            key = _ALIASES.get(flag[2:], flag[2:])
            found.append((COMMAND_LINE, {key: value} | _flatten(_load(value), key)))
    return found


def _load(text: str | None) -> Any:
    try:
        return yaml.safe_load(text or "")
    except yaml.YAMLError:
        return text


def _flatten(data: Any, prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    items = data.items() if isinstance(data, dict) else enumerate(data) if isinstance(data, list) else ()
    for key, value in items:
        path = f"{prefix}.{key}" if prefix else str(key)
        flat[path] = value
        flat |= _flatten(value, path)
    return flat


def _locate(
    sources: list[tuple[str, dict[str, Any]]], top: str, nested: list[str], option: str | None, bad: str | None
) -> tuple[str, str]:
    """The last source setting the faulty key, and the key's dotted path there (jsonargparse's when not found)."""
    for name, flat in reversed(sources):
        for path, value in flat.items():
            if path != top and not path.startswith(top + "."):
                continue
            parts = path.split(".")
            if not _in_order(nested, parts[len(top.split(".")) :]):
                continue
            if option is not None and parts[-1] == option:
                return name, path
            if option is None and bad is not None and isinstance(value, (str, int, float)) and str(value) == bad:
                return name, path
            if option is None and bad is None and parts[-1] == (nested[-1] if nested else top.split(".")[-1]):
                return name, path
    return _last_file(sources), ".".join([top, *nested, *([option] if option else [])])


def _last_file(sources: list[tuple[str, dict[str, Any]]]) -> str:
    return next((name for name, _ in reversed(sources) if name != COMMAND_LINE), COMMAND_LINE)


def _in_order(wanted: list[str], parts: list[str]) -> bool:
    remaining = iter(parts)
    return all(any(part == key for part in remaining) for key in wanted)
