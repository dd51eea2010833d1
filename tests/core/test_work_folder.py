"""The resumable work folder: durable logs, torn-line repair, settings comparison, stale files never kept."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from lvlm.core.work_folder import JsonLog, WorkFolder
from tests.core.work_folder_job import run
from tests.waiting import wait_until

JOB = Path(__file__).with_name("work_folder_job.py")
ROOT = Path(__file__).parents[2]


def test_a_fresh_start_deletes_what_an_earlier_job_left(tmp_path):
    folder = WorkFolder(tmp_path / "work")
    folder.start({"a": 1})
    (folder.path / "stale.bin").write_bytes(b"old")
    folder.start({"a": 2})
    assert sorted(p.name for p in folder.path.iterdir()) == ["settings.json"]
    assert folder.saved_settings() == {"a": 2}


def test_changed_names_the_settings_that_differ(tmp_path):
    folder = WorkFolder(tmp_path / "work", settings_file="run.json")
    assert folder.changed({"a": 1}) is None  # nothing saved yet
    folder.start({"a": 1, "b": [1, 2], "overwrite": False})
    assert folder.changed({"a": 1, "b": [1, 2], "overwrite": False}) == []
    assert folder.changed({"a": 2, "b": [1, 2], "c": 0, "overwrite": True}, ignore={"overwrite"}) == ["a", "c"]
    (folder.path / "run.json").write_text("{not json")
    assert folder.changed({"a": 1}) is None


def test_a_line_torn_by_a_kill_is_left_out_and_cut_on_reopen(tmp_path):
    folder = WorkFolder(tmp_path / "work")
    folder.start({})
    log = folder.log("done.jsonl")
    log.append([{"item": 0}, {"item": 1, "text": "é"}])
    log.close()
    with open(log.path, "ab") as handle:
        handle.write(b'{"item": 2, "te')  # the kill landed inside this write
    assert log.lines() == [{"item": 0}, {"item": 1, "text": "é"}]
    folder.reopen()
    assert log.path.read_bytes().endswith(b"}\n")
    log.append([{"item": 2}])
    assert [line["item"] for line in JsonLog(log.path).lines()] == [0, 1, 2]


def test_keep_only_deletes_files_made_after_the_last_logged_line(tmp_path):
    folder = WorkFolder(tmp_path / "work")
    folder.start({})
    for name in ["a.tar", "b.tar", "b.tar.tmp"]:
        (folder.path / name).write_bytes(b"x")
    (folder.path / "half").mkdir()
    folder.keep_only({"a.tar"})
    assert sorted(p.name for p in folder.path.iterdir()) == ["a.tar", "settings.json"]
    folder.remove()
    assert not folder.exists()


def test_kill_9_midway_then_a_rerun_ends_as_an_uninterrupted_run(tmp_path):
    items = 1000  # enough that the kill lands midway on a fast disk too
    work = tmp_path / "killed"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    child = subprocess.Popen([sys.executable, str(JOB), str(work), str(items)], env=env)
    done = work / "done.jsonl"
    wait_until(lambda: done.is_file() and done.read_bytes().count(b"\n") >= 20, "20 logged items")
    child.send_signal(signal.SIGKILL)
    child.wait()
    logged = JsonLog(done).lines()
    assert 20 <= len(logged) < items, "the kill must land midway"
    assert [line["item"] for line in logged] == list(range(len(logged)))  # every logged line whole, in order

    run(WorkFolder(work), items)
    run(WorkFolder(tmp_path / "clean"), items)
    names = sorted(p.name for p in work.iterdir())
    assert names == sorted(p.name for p in (tmp_path / "clean").iterdir())
    assert [line["item"] for line in JsonLog(done).lines()] == list(range(items))
    assert all((work / f"item-{i}.txt").read_text() == str(i * i) * 200 for i in range(items))


def test_settings_are_compared_as_they_are_saved(tmp_path):
    """A tuple setting reads back from JSON as a list: the same setting, not a changed one."""
    folder = WorkFolder(tmp_path / "work", "run.json")
    folder.start({"stop": ("\n",), "seed": None})
    assert folder.changed({"stop": ("\n",), "seed": None}) == []
    assert folder.changed({"stop": ("END",), "seed": None}) == ["stop"]
