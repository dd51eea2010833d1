"""The work folder of a conversion: its settings and a progress log, so an interrupted run can be resumed exactly.

``lvlm shards --out OUT`` works in ``.OUT.shards-work`` beside ``OUT``: finished shards (``*.tar``), the one
being written (``*.tar.tmp``), ``settings.json`` (what the run converts and how) and ``progress.jsonl``. A line
is appended to the log right after each shard gets its final name::

    {"shard": "shard-000003.tar", "samples": 10000, "samples_by_modality": {...}, "next": 40012,
     "skipped": [...], "renamed": [...]}

``next`` is the first record (over all inputs, in order) not yet accounted for; ``skipped``/``renamed`` are the
report entries of the records since the previous line. The last line of a finished conversion is
``{"done": true, "next": N, "skipped": [...], "renamed": []}``. A resumed run keeps the logged shards, deletes
anything written after the last line, and starts again at ``next``: keys are fixed before conversion and shard
contents depend only on the records, so the result equals that of an uninterrupted run.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lvlm.core.errors import UserError
from lvlm.core.work_folder import WorkFolder

SETTINGS, PROGRESS = "settings.json", "progress.jsonl"


def work_folder(out: Path) -> Path:
    """The work folder of a conversion into ``out``: a hidden sibling, ``.OUT.shards-work``."""
    out = Path(os.path.abspath(out))
    return out.with_name(f".{out.name}.shards-work")


@dataclass
class Progress:
    """What the log of a work folder says is done.

    Attributes:
        lines: The logged lines, in order.
    """

    lines: list[dict[str, Any]] = field(default_factory=list)

    @property
    def next(self) -> int:
        """The first record not yet converted."""
        return int(self.lines[-1]["next"]) if self.lines else 0

    @property
    def done(self) -> bool:
        """True once the conversion wrote its last shard."""
        return bool(self.lines) and bool(self.lines[-1].get("done"))

    @property
    def shards(self) -> list[dict[str, Any]]:
        """``{"url", "samples", "samples_by_modality"}`` of every finished shard, in order."""
        return [
            {"url": ln["shard"], "samples": ln["samples"], "samples_by_modality": ln["samples_by_modality"]}
            for ln in self.lines
            if "shard" in ln
        ]

    def entries(self, name: str) -> list[dict[str, Any]]:
        """Every logged ``skipped`` or ``renamed`` entry, in record order."""
        return [entry for ln in self.lines for entry in ln[name]]


class ConversionLog:
    """Create, check and append to the work folder of one conversion (a :class:`~lvlm.core.work_folder.WorkFolder`).

    Args:
        work: The work folder (see :func:`work_folder`).
    """

    def __init__(self, work: Path) -> None:
        self.work = work
        self.folder = WorkFolder(work, SETTINGS)
        self.progress_log = self.folder.log(PROGRESS)

    def start(self, settings: dict[str, Any]) -> Progress:
        """A fresh work folder for ``settings`` (an old one is deleted)."""
        self.folder.start(settings)
        self.progress_log.path.touch()
        return Progress()

    def resume(self, settings: dict[str, Any]) -> Progress:
        """The progress of an interrupted conversion with the same ``settings``; its stray files are removed.

        Raises:
            UserError: No work folder, or one made with other settings (the differences are named).
        """
        changed = self.folder.changed(settings, ignore={"overwrite"})
        if changed is None:
            raise UserError(f"--resume: no interrupted conversion to resume in {self.work} (no readable {SETTINGS})")
        if changed:
            raise UserError(
                f"--resume: the interrupted conversion in {self.work} was started with other {', '.join(changed)}; "
                "resume with the same inputs and options, or start again with --overwrite"
            )
        self.folder.reopen(PROGRESS)
        progress = Progress(self.progress_log.lines())
        self.folder.keep_only({shard["url"] for shard in progress.shards} | {PROGRESS})
        return progress

    def saved_settings(self) -> dict[str, Any]:
        """The settings the work folder was started with."""
        return self.folder.saved_settings() or {}

    def append(self, line: dict[str, Any]) -> None:
        """Log one finished shard (or the end); durable before returning."""
        self.progress_log.append([line])
        self.progress_log.close()

    def remove(self) -> None:
        """Delete the work folder (once its shards are in the output)."""
        self.folder.remove()
