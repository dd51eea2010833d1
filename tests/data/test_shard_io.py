"""Shard sources: local braces and globs, `pipe:` commands and `http://` from a real server on 127.0.0.1."""

from __future__ import annotations

import functools
import http.server
import threading
from pathlib import Path

import pytest
from shard_fixtures import good_samples, make_datamodule, write_shards

from lvlm.data.shard_io import expand_pattern, list_keys

SHARDS = [good_samples("a", 4), good_samples("b", 3)]
KEYS = [s["__key__"] for shard in SHARDS for s in shard]


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory):
    """`(local brace pattern, http brace pattern)` of the same two shards, served by `http.server`."""
    root = tmp_path_factory.mktemp("served")
    pattern = write_shards(root, "web", SHARDS)
    handler = functools.partial(_QuietHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield pattern, f"http://127.0.0.1:{server.server_address[1]}/web-{{000..001}}.tar"
    finally:
        server.shutdown()
        server.server_close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass


def test_local_tar_keys_are_listed_from_the_headers(served) -> None:
    local, _ = served
    urls = expand_pattern(local)
    assert [key for url in urls for key in list_keys(url, lambda err: True)] == KEYS


def test_http_shards_stream_for_validation_and_a_single_pass(served, tmp_path: Path) -> None:
    _, url = served
    assert expand_pattern(url) == [url.replace("{000..001}", "000"), url.replace("{000..001}", "001")]
    val = make_datamodule(tmp_path / "val", sources={"val": [{"pattern": url}]})
    assert [k for b in val.val_dataloader() for k in b["keys"]] == KEYS
    train = make_datamodule(
        tmp_path / "train",
        sources={"train": [{"pattern": url}]},
        sampling={"mode": "single_pass", "batches_per_epoch": None},
    )
    assert sorted(k for b in train.train_dataloader() for k in b["keys"]) == sorted(KEYS)


def test_pipe_sources_run_a_command_per_shard(served, tmp_path: Path) -> None:
    local, _ = served
    first, second = expand_pattern(local)
    dm = make_datamodule(
        tmp_path, sources={"val": [{"pattern": f"pipe:cat {first}"}, {"pattern": f"pipe:cat {second}"}]}
    )
    assert [k for b in dm.val_dataloader() for k in b["keys"]] == KEYS
    resampled = make_datamodule(
        tmp_path / "r", sources={"train": [{"pattern": f"pipe:cat {first}"}]}, sampling={"batches_per_epoch": 3}
    )
    assert {k for b in resampled.train_dataloader() for k in b["keys"]} <= set(KEYS[:4])
