"""Outputs that never destroy inputs, never mix runs and never leave stale files beside new ones.

Every command that writes calls :func:`check_output` before its expensive work and writes through
:func:`staged_output`: the result is built in a temporary sibling (``.NAME.partial-XXXX``) and moved into
place only when complete. An existing non-empty output is refused unless ``overwrite``; with ``overwrite``
the old output is replaced whole (no file of it survives), and only after the new one is complete.
"""

from __future__ import annotations

import glob
import os
import shutil
import tempfile
from collections.abc import Collection, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from lvlm.core.errors import UserError


class OutputError(UserError):
    """An output path that would destroy an input, or an existing output given without ``--overwrite``."""


def _resolved(path: str | os.PathLike[str]) -> Path:
    return Path(os.path.abspath(os.path.realpath(os.fspath(path))))


def _is_within(inner: Path, outer: Path) -> bool:
    return inner == outer or outer in inner.parents


def check_output(
    output: str | os.PathLike[str],
    inputs: Iterable[str | os.PathLike[str] | None] = (),
    overwrite: bool = False,
    what: str = "output",
) -> Path:
    """Refuse an output that is, contains or lies inside an input, or that exists and is not empty.

    Args:
        output: the file or folder the command will write.
        inputs: every file or folder the command reads (None entries are ignored).
        overwrite: accept an existing output (it is replaced whole once the new one is complete).
        what: the flag or field that named ``output``, used in messages (``--out``).

    Returns:
        ``output`` as an absolute path.
    """
    out = _resolved(output)
    for source in inputs:
        if source is None:
            continue
        src = _resolved(source)
        if _is_within(out, src) or _is_within(src, out):
            relation = "is" if out == src else ("lies inside" if _is_within(out, src) else "contains")
            raise OutputError(f"{what} {output} {relation} the input {source}: choose an output outside the inputs")
    if out.exists() and not overwrite and (out.is_file() or any(out.iterdir())):
        raise OutputError(f"{what} {output} exists and is not empty: choose a new path or pass --overwrite")
    return Path(os.path.abspath(os.fspath(output)))


def paths_named_in(settings: object, skip: Collection[str] = ()) -> list[str]:
    """Every existing file or folder a settings tree names (a glob by the files it matches): what a job reads, so
    what its outputs must leave alone. Values under a key in ``skip`` (the outputs themselves) are left out."""
    if isinstance(settings, dict):
        return [p for key, value in settings.items() if key not in skip for p in paths_named_in(value, skip)]
    if isinstance(settings, (list, tuple)):
        return [p for value in settings for p in paths_named_in(value, skip)]
    if not isinstance(settings, str) or not 0 < len(settings) < 4096 or "\0" in settings:
        return []
    try:
        if any(char in settings for char in "*?["):
            return sorted(glob.glob(os.path.expanduser(settings)))
        return [settings] if Path(settings).expanduser().exists() else []
    except (OSError, ValueError):
        return []


def _replace(staged: Path, final: Path) -> None:
    """Move ``staged`` to ``final``; an old ``final`` is moved aside first and deleted only afterwards."""
    old = None
    if final.exists() or final.is_symlink():
        old = final.with_name(f".{final.name}.old-{os.getpid()}")
        os.replace(final, old)
    os.replace(staged, final)
    if old is not None:
        shutil.rmtree(old) if old.is_dir() and not old.is_symlink() else old.unlink()


@contextmanager
def staged_output(final: str | os.PathLike[str], directory: bool = True) -> Iterator[Path]:
    """A temporary sibling of ``final`` to write into; moved to ``final`` when the block ends without error.

    On an error the partial result is deleted and ``final`` is left as it was.
    """
    final = Path(os.path.abspath(os.fspath(final)))
    final.parent.mkdir(parents=True, exist_ok=True)
    prefix = f".{final.name}.partial-"
    if directory:
        staged = Path(tempfile.mkdtemp(prefix=prefix, dir=final.parent))
    else:
        handle, name = tempfile.mkstemp(prefix=prefix, dir=final.parent)
        os.close(handle)
        staged = Path(name)
    try:
        yield staged
    except BaseException:
        if staged.is_dir():
            shutil.rmtree(staged, ignore_errors=True)
        else:
            staged.unlink(missing_ok=True)
        raise
    _replace(staged, final)
