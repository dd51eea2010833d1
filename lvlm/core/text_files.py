"""Reading a user's text file whatever its encoding: UTF-8 first, the fallback decided and reported, never a crash.

``encoding="auto"`` (the default) reads UTF-8 (a byte-order mark is honoured: UTF-8, UTF-16 or UTF-32) and,
when the bytes are not valid UTF-8, Latin-1, which decodes any byte; the caller reports the encoding used
(``DecodedText.note``), so a mis-decoded file is visible in its results instead of silently mangled. An explicit
encoding (``"cp1252"``, ``"utf-16"``, ...) is used as given; bytes it cannot decode are a
:class:`~lvlm.core.errors.UserError` naming the file and the byte offset.
"""

from __future__ import annotations

import codecs
import os
from dataclasses import dataclass
from pathlib import Path

from lvlm.core.errors import UserError

_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)
FALLBACK = "latin-1"


class InputFileError(UserError):
    """A user's input file is missing, unreadable or cannot be decoded with the requested encoding."""


@dataclass(frozen=True)
class DecodedText:
    """A decoded file: its text, the encoding used and, when it was not plain UTF-8, why."""

    text: str
    encoding: str
    note: str = ""


def read_text(path: str | os.PathLike[str], encoding: str = "auto") -> DecodedText:
    """Decode a whole text file (see the module docstring for ``encoding="auto"``).

    Raises:
        InputFileError: the file is missing or unreadable, or ``encoding`` cannot decode it.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise InputFileError(f"{path}: file not found") from None
    except OSError as err:
        raise InputFileError(f"{path}: cannot read ({err.strerror or err})") from None
    if encoding != "auto":
        try:
            return DecodedText(data.decode(encoding), encoding)
        except LookupError:
            raise InputFileError(f"{path}: unknown encoding {encoding!r}") from None
        except UnicodeDecodeError as err:
            raise InputFileError(f"{path}: not valid {encoding} at byte {err.start} ({err.reason})") from None
    for bom, name in _BOMS:
        if data.startswith(bom):
            try:
                return DecodedText(data.decode(name), name, "" if name == "utf-8-sig" else f"read as {name} (BOM)")
            except UnicodeDecodeError as err:
                raise InputFileError(f"{path}: has a {name} byte-order mark but byte {err.start} is invalid") from None
    try:
        return DecodedText(data.decode("utf-8"), "utf-8")
    except UnicodeDecodeError as err:
        note = f"not valid UTF-8 (byte {err.start}); read as {FALLBACK}"
        return DecodedText(data.decode(FALLBACK), FALLBACK, note)
