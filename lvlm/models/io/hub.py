"""Resolve a local directory or a Hugging Face hub id to a directory on disk, offline-first.

The rule that tells the two apart (docs/models.md states it): a name is a **hub id** only when it has the hub's
form ``org/name`` (exactly one ``/``, each side made of letters, digits, ``-``, ``_`` and ``.``, not starting with
``.`` or ``-``) and ``org`` is not a directory here. Everything else is a **local path**: a name that starts with
``.``, ``/`` or ``~``, holds a backslash, has no ``/`` or more than one, or begins with a local directory
(``quickstart/tokenizer`` next to a ``quickstart/`` folder). A local path that is not a directory is refused at
once, naming it, with no network access.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from lvlm.core.errors import UserError

_HUB_PART = r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,95}"
_HUB_ID = re.compile(rf"^{_HUB_PART}/{_HUB_PART}$")


class CheckpointNotFoundError(UserError, FileNotFoundError):
    """A checkpoint is neither a local directory nor obtainable from the hub (or its cache)."""


def is_hub_id(name: str) -> bool:
    """Whether ``name`` is read as a hub id (``org/name``, ``org`` not a local directory); see the module rule."""
    if not _HUB_ID.match(name) or ".." in name or "--" in name or name.endswith((".", "-")):
        return False
    return not Path(name.split("/", 1)[0]).is_dir()


def download_hint(name: str) -> str:
    """How to get hub repository ``name`` onto a machine without network: the command that exists today."""
    return f"download it where there is network (`hf download {name} --local-dir DIR`), copy DIR here and pass DIR"


def resolve_checkpoint_dir(path_or_hub_id: str | os.PathLike) -> Path:
    """A local directory as is; a hub id from the local Hugging Face cache, or downloaded when online.

    Raises:
        CheckpointNotFoundError: a local path that is not a directory (at once, no network), or a hub id neither
            cached nor downloadable; the message names it and says how to get a local copy.
    """
    name = os.fspath(path_or_hub_id)
    path = Path(name).expanduser()
    if path.is_dir():
        return path
    if path.exists():
        raise CheckpointNotFoundError(f"{name}: not a directory (a checkpoint, tokenizer or tower is a directory)")
    if not is_hub_id(name):
        raise CheckpointNotFoundError(f"{name}: no such directory")
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    offline = os.environ.get("HF_HUB_OFFLINE", "0").lower() in {"1", "true", "yes"}
    try:
        return Path(snapshot_download(name, local_files_only=offline))
    except (LocalEntryNotFoundError, OSError, ValueError) as error:
        reason = "offline (HF_HUB_OFFLINE=1) and not in the local cache" if offline else f"not reachable ({error})"
        raise CheckpointNotFoundError(
            f"{name}: no such directory, and as a hub id {reason}; {download_hint(name)}"
        ) from error
