"""The output of a prediction job: a work folder written batch by batch, and the final files made from it.

While a run works, every process appends its batches to ``OUT.partial/rank{r}-of-{N}.jsonl`` (one line
``{"index", "key", "record"}`` or ``{"index", "key", "skipped"}`` per question, flushed and fsynced after each
batch) beside ``OUT.partial/run.json``, which records what is being predicted (model, inputs, decoding
settings). At the end the lines of every part are merged in input order into ``OUT`` and ``OUT.skipped.jsonl``
(each built in a temporary sibling and moved into place), then the partial folder is deleted: ``OUT`` appears
only when the run is complete. ``--resume`` keeps the partial folder (its settings must match), drops a line
torn by a kill, and answers only the questions not in it, by index and key. The folder's mechanics (durable
lines, torn-line repair, settings comparison) are :mod:`lvlm.core.work_folder`'s.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from lvlm.core.errors import UserError
from lvlm.core.outputs import staged_output
from lvlm.core.work_folder import JsonLog, WorkFolder
from lvlm.inference.predict import PredictionResult, SkippedQuestion

RUN_FILE = "run.json"
PART_FILES = "rank*-of-*.jsonl"


class ResumeError(UserError):
    """A partial run that cannot be continued as asked (no ``--resume``, or other settings or inputs)."""


def skipped_path(out: str | Path) -> Path:
    """``predictions.jsonl`` -> ``predictions.skipped.jsonl`` (the report of skipped questions)."""
    out = Path(out)
    return out.with_name(out.name.removesuffix(".jsonl") + ".skipped.jsonl")


def partial_path(out: str | Path) -> Path:
    """The folder an unfinished run writes into (``OUT.partial``)."""
    out = Path(out)
    return out.with_name(out.name + ".partial")


class PartialRun:
    """The ``OUT.partial`` folder of one prediction run (a :class:`~lvlm.core.work_folder.WorkFolder`).

    Args:
        out: the final JSONL file.
    """

    def __init__(self, out: str | Path) -> None:
        self.out = Path(out)
        self.dir = partial_path(out)
        self.folder = WorkFolder(self.dir, RUN_FILE)

    def check(self, identity: dict[str, Any], resume: bool, overwrite: bool) -> None:
        """Refuse to start over a partial run without ``--resume``/``--overwrite``, or to resume another run."""
        if not self.folder.exists() or (overwrite and not resume):
            return
        if not resume:
            raise ResumeError(
                f"{self.dir} holds an interrupted run: pass --resume to continue it, or --overwrite to start over"
            )
        changed = self.folder.changed(identity)
        if changed is None:
            raise ResumeError(f"{self.dir / RUN_FILE} is missing or unreadable: pass --overwrite to start over")
        if changed:
            saved = self.folder.saved_settings() or {}
            raise ResumeError(
                f"--resume: {self.dir} was made with other {', '.join(changed)} (saved: "
                f"{ {k: saved.get(k) for k in changed} }); use the same settings, or --overwrite to start over"
            )

    def prepare(self, identity: dict[str, Any], resume: bool) -> None:
        """Create the folder (a fresh one unless resuming) and record the run's identity."""
        if resume and self.folder.exists():
            self.folder.record(identity)
            self.folder.reopen(PART_FILES)
        else:
            self.folder.start(identity)

    def parts(self) -> list[JsonLog]:
        return self.folder.logs(PART_FILES)

    def done(self) -> dict[int, str]:
        """``index -> key`` of every question already answered or skipped (from every part)."""
        return {line["index"]: line["key"] for part in self.parts() for line in part.lines()}

    def part_file(self, rank: int, world: int) -> Path:
        return self.dir / f"rank{rank}-of-{world}.jsonl"

    def merged(self) -> PredictionResult:
        """Every part's lines in input order (one per index)."""
        lines: dict[int, dict[str, Any]] = {}
        for part in self.parts():
            for line in part.lines():
                lines.setdefault(line["index"], line)
        result = PredictionResult()
        for index in sorted(lines):
            line = lines[index]
            if "record" in line:
                result.indices.append(index)
                result.predictions.append(line["record"])
            else:
                result.skipped.append(SkippedQuestion(**line["skipped"]))
        return result

    def finish(self) -> PredictionResult:
        """Write ``OUT.skipped.jsonl`` then ``OUT`` (each swapped in whole), delete the partial folder."""
        result = self.merged()
        with staged_output(skipped_path(self.out), directory=False) as staged:
            _write_jsonl(staged, (s.to_dict() for s in result.skipped))
        with staged_output(self.out, directory=False) as staged:
            _write_jsonl(staged, result.predictions)
        self.folder.remove()
        return result


def _write_jsonl(path: Path, rows: Iterable[dict[str, Any]]) -> None:
    with path.open("w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")


class PartWriter:
    """Appends one process's finished batches to its part file, durably (flush + fsync per batch)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._log = JsonLog(path)

    def write(self, batch: PredictionResult) -> None:
        records = zip(batch.indices, batch.predictions)
        lines = [{"index": i, "key": record["key"], "record": record} for i, record in records]
        lines += [{"index": s.index, "key": s.key, "skipped": s.to_dict()} for s in batch.skipped]
        self._log.append(lines)

    def close(self) -> None:
        self._log.close()
