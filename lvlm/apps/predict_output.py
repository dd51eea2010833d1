"""The output of ``lvlm predict``: a partial folder written batch by batch, and the final files made from it.

While a run works, every process appends its batches to ``OUT.partial/rank{r}-of-{N}.jsonl`` (one line
``{"index", "key", "record"}`` or ``{"index", "key", "skipped"}`` per question, flushed and fsynced after each
batch) beside ``OUT.partial/run.json``, which records what is being predicted (model, inputs, decoding
settings). At the end the lines of every part are merged in input order into ``OUT`` and ``OUT.skipped.jsonl``
(each built in a temporary sibling and moved into place), then the partial folder is deleted: ``OUT`` appears
only when the run is complete. ``--resume`` keeps the partial folder (its settings must match), drops a line
torn by a kill, and answers only the questions not in it, by index and key.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from lvlm.core.errors import UserError
from lvlm.core.outputs import staged_output
from lvlm.inference.predict import PredictionResult, SkippedQuestion

RUN_FILE = "run.json"


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


def _complete_lines(path: Path, repair: bool = False) -> list[dict[str, Any]]:
    """The whole lines of a part file; with ``repair`` a last line cut short by a kill is cut from the file too."""
    data = path.read_bytes()
    end = data.rfind(b"\n") + 1
    if repair and end < len(data):
        with path.open("r+b") as f:
            f.truncate(end)
    return [json.loads(line) for line in data[:end].decode("utf-8").splitlines() if line.strip()]


class PartialRun:
    """The ``OUT.partial`` folder of one prediction run.

    Args:
        out: the final JSONL file.
    """

    def __init__(self, out: str | Path) -> None:
        self.out = Path(out)
        self.dir = partial_path(out)

    def check(self, identity: dict[str, Any], resume: bool, overwrite: bool) -> None:
        """Refuse to start over a partial run without ``--resume``/``--overwrite``, or to resume another run."""
        if not self.dir.exists() or (overwrite and not resume):
            return
        if not resume:
            raise ResumeError(
                f"{self.dir} holds an interrupted run: pass --resume to continue it, or --overwrite to start over"
            )
        run_file = self.dir / RUN_FILE
        try:
            saved = json.loads(run_file.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            raise ResumeError(f"{run_file} is missing or unreadable: pass --overwrite to start over") from None
        if saved != identity:
            changed = sorted(k for k in set(saved) | set(identity) if saved.get(k) != identity.get(k))
            raise ResumeError(
                f"--resume: {self.dir} was made with other {', '.join(changed)} (saved: "
                f"{ {k: saved.get(k) for k in changed} }); use the same settings, or --overwrite to start over"
            )

    def prepare(self, identity: dict[str, Any], resume: bool) -> None:
        """Create the folder (a fresh one unless resuming) and record the run's identity."""
        if self.dir.exists() and not resume:
            shutil.rmtree(self.dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        (self.dir / RUN_FILE).write_text(json.dumps(identity, indent=1, sort_keys=True), encoding="utf-8")
        for part in self.parts():
            _complete_lines(part, repair=True)

    def parts(self) -> list[Path]:
        return sorted(self.dir.glob("rank*-of-*.jsonl")) if self.dir.is_dir() else []

    def done(self) -> dict[int, str]:
        """``index -> key`` of every question already answered or skipped (from every part)."""
        return {line["index"]: line["key"] for part in self.parts() for line in _complete_lines(part)}

    def part_file(self, rank: int, world: int) -> Path:
        return self.dir / f"rank{rank}-of-{world}.jsonl"

    def merged(self) -> PredictionResult:
        """Every part's lines in input order (one per index)."""
        lines: dict[int, dict[str, Any]] = {}
        for part in self.parts():
            for line in _complete_lines(part, repair=True):
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
        shutil.rmtree(self.dir)
        return result


def _write_jsonl(path: Path, rows: Iterable[dict[str, Any]]) -> None:
    with path.open("w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")


class PartWriter:
    """Appends one process's finished batches to its part file, durably (flush + fsync per batch)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._file = path.open("a", encoding="utf-8")

    def write(self, batch: PredictionResult) -> None:
        for index, record in zip(batch.indices, batch.predictions):
            self._file.write(json.dumps({"index": index, "key": record["key"], "record": record}, ensure_ascii=False))
            self._file.write("\n")
        for s in batch.skipped:
            self._file.write(json.dumps({"index": s.index, "key": s.key, "skipped": s.to_dict()}, ensure_ascii=False))
            self._file.write("\n")
        self._file.flush()
        os.fsync(self._file.fileno())

    def close(self) -> None:
        self._file.close()
