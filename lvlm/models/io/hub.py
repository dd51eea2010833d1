"""Resolve a local directory or a Hugging Face hub id to a directory on disk, offline-first."""

from __future__ import annotations

import os
from pathlib import Path


class CheckpointNotFoundError(FileNotFoundError):
    """A checkpoint is neither a local directory nor obtainable from the hub (or its cache)."""


def resolve_checkpoint_dir(path_or_hub_id: str | os.PathLike) -> Path:
    """A local directory as is; a hub id from the local Hugging Face cache, or downloaded when online.

    Raises:
        CheckpointNotFoundError: with the way to point at a local directory instead.
    """
    path = Path(path_or_hub_id).expanduser()
    if path.is_dir():
        return path
    name = str(path_or_hub_id)
    if path.exists() or name.startswith((".", "/", "~")) or name.count("/") != 1:
        raise CheckpointNotFoundError(
            f"{name}: not a checkpoint directory (expected a directory or an 'org/name' hub id)"
        )
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    offline = os.environ.get("HF_HUB_OFFLINE", "0").lower() in {"1", "true", "yes"}
    try:
        return Path(snapshot_download(name, local_files_only=offline))
    except (LocalEntryNotFoundError, OSError, ValueError) as error:
        reason = "offline (HF_HUB_OFFLINE=1) and not in the local cache" if offline else f"not reachable ({error})"
        raise CheckpointNotFoundError(
            f"{name}: hub checkpoint {reason}. Download it on a machine with network "
            f"(`huggingface-cli download {name} --local-dir DIR`), copy DIR here and pass the directory path instead."
        ) from error
