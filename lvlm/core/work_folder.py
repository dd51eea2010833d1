"""A resumable work folder: the one way a long job records what it has finished so a rerun skips it.

A job that makes its output piece by piece (``lvlm predict``'s answers, ``lvlm shards``' shards) works in a folder
of its own beside the output, never in the output itself:

- a settings file (``settings.json``, or the name the job chose) records what the folder is making; a rerun may
  continue the folder only with the same settings (:meth:`WorkFolder.changed` names the ones that differ);
- append-only JSON-lines logs (:class:`JsonLog`) record each finished item; a line is flushed and fsynced before
  :meth:`JsonLog.append` returns, so after a ``kill -9`` every logged item is really done;
- :meth:`WorkFolder.reopen` cuts a line torn by the kill from every log, and :meth:`WorkFolder.keep_only` deletes
  files finished after the last logged line (or half written): they are redone, never trusted;
- once the job has moved its result into place (:func:`lvlm.core.outputs.staged_output`), :meth:`WorkFolder.remove`
  deletes the folder: the output appears whole or not at all, and a fresh run (:meth:`WorkFolder.start`) never
  sees stale files of an earlier one.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Collection, Iterable
from pathlib import Path
from typing import IO, Any


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary sibling: readers see the old file or the new one, whole."""
    tmp = path.with_name(f"{path.name}.tmp")
    with open(tmp, "w", encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


class JsonLog:
    """An append-only JSON-lines file; every line is durable once :meth:`append` returns.

    Args:
        path: the log file (created on the first append).
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._handle: IO[str] | None = None

    def lines(self, repair: bool = False) -> list[dict[str, Any]]:
        """The whole lines, in order; a line cut short by a kill (and anything after it) is left out.

        Args:
            repair: also cut that line from the file, so the next append starts on a line of its own.
        """
        if not self.path.is_file():
            return []
        data = self.path.read_bytes()
        lines, end = [], 0
        while (stop := data.find(b"\n", end)) >= 0:
            try:
                text = data[end:stop].decode("utf-8").strip()
                line = json.loads(text) if text else None
            except ValueError:  # a line torn by the kill: it and anything after it are redone
                break
            if line is not None:
                lines.append(line)
            end = stop + 1
        if repair and end < len(data):
            with self.path.open("r+b") as handle:
                handle.truncate(end)
        return lines

    def append(self, lines: Iterable[dict[str, Any]]) -> None:
        """Append ``lines`` (JSON objects) and make them durable (flush + fsync) before returning."""
        if self._handle is None:
            self._handle = self.path.open("a", encoding="utf-8")
        for line in lines:
            self._handle.write(json.dumps(line) + "\n")  # ASCII: keys may hold lone surrogates
        self._handle.flush()
        os.fsync(self._handle.fileno())

    def close(self) -> None:
        """Close the file (a later :meth:`append` opens it again)."""
        if self._handle is not None:
            self._handle.close()
            self._handle = None


class WorkFolder:
    """The folder one resumable job works in: its settings, its logs of finished items and its own files.

    Args:
        path: the folder (a sibling of the job's output, never inside it).
        settings_file: the name of the file recording the job's settings.
    """

    def __init__(self, path: str | os.PathLike[str], settings_file: str = "settings.json") -> None:
        self.path = Path(path)
        self.settings_file = settings_file

    def exists(self) -> bool:
        """True while an unfinished job's folder is there."""
        return self.path.exists()

    def start(self, settings: dict[str, Any]) -> None:
        """A fresh folder for ``settings``: whatever an earlier job left there is deleted first."""
        self.remove()
        self.path.mkdir(parents=True)
        self.record(settings)

    def record(self, settings: dict[str, Any]) -> None:
        """Write ``settings`` into the folder (atomically)."""
        write_atomic(self.path / self.settings_file, json.dumps(settings, indent=1, sort_keys=True) + "\n")

    def saved_settings(self) -> dict[str, Any] | None:
        """The settings the folder was started with; None when they are missing or unreadable."""
        try:
            saved = json.loads((self.path / self.settings_file).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return saved if isinstance(saved, dict) else None

    def changed(self, settings: dict[str, Any], ignore: Collection[str] = ()) -> list[str] | None:
        """The names of the settings that differ from the saved ones (sorted); None when none are saved.

        ``settings`` are compared as they are saved (JSON: a tuple reads back as a list)."""
        saved = self.saved_settings()
        if saved is None:
            return None
        settings = json.loads(json.dumps(settings))
        return sorted(k for k in set(saved) | set(settings) if k not in ignore and saved.get(k) != settings.get(k))

    def log(self, name: str) -> JsonLog:
        """The log ``name`` of the folder."""
        return JsonLog(self.path / name)

    def logs(self, pattern: str = "*.jsonl") -> list[JsonLog]:
        """Every log whose name matches ``pattern``, sorted by name."""
        return [JsonLog(p) for p in sorted(self.path.glob(pattern))] if self.path.is_dir() else []

    def reopen(self, pattern: str = "*.jsonl") -> None:
        """Continue an interrupted job: cut the line a kill tore from every log matching ``pattern``."""
        for log in self.logs(pattern):
            log.lines(repair=True)

    def keep_only(self, names: Collection[str]) -> None:
        """Delete every entry of the folder but ``names`` and the settings file (files made after the last logged
        line, or half written: the job makes them again)."""
        keep = {*names, self.settings_file}
        for path in self.path.iterdir():
            if path.name not in keep:
                shutil.rmtree(path) if path.is_dir() and not path.is_symlink() else path.unlink()

    def remove(self) -> None:
        """Delete the folder (once its result is in place, or to start over)."""
        if self.path.is_dir() and not self.path.is_symlink():
            shutil.rmtree(self.path)
        elif self.path.exists() or self.path.is_symlink():
            self.path.unlink()
