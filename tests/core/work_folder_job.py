"""A tiny resumable job on a :class:`~lvlm.core.work_folder.WorkFolder` (run as a process, for the kill -9 test).

    python tests/core/work_folder_job.py FOLDER ITEMS

Item ``i`` is a file ``item-i.txt`` holding ``i`` squared, made in the folder and then logged. A rerun with the same
settings continues the folder: it keeps the logged items, deletes anything made after the last logged line, and
makes the rest, so a killed and resumed run ends like one that was never interrupted.
"""

from __future__ import annotations

import sys
from pathlib import Path

from lvlm.core.work_folder import WorkFolder


def run(folder: WorkFolder, items: int) -> None:
    settings = {"items": items}
    if folder.changed(settings) == []:
        folder.reopen()
    else:
        folder.start(settings)
    done = [line["item"] for line in folder.log("done.jsonl").lines()]
    folder.keep_only({f"item-{i}.txt" for i in done} | {"done.jsonl"})
    log = folder.log("done.jsonl")
    for i in range(len(done), items):
        (folder.path / f"item-{i}.txt").write_text(str(i * i) * 200)
        log.append([{"item": i}])
    log.close()


if __name__ == "__main__":
    run(WorkFolder(Path(sys.argv[1])), int(sys.argv[2]))
