"""`s3://` sources (the `s3` extra, s3fs) against a real S3-compatible server on 127.0.0.1 (moto's server).

The endpoint and credentials come from the standard AWS environment variables (`AWS_ENDPOINT_URL`,
`AWS_ACCESS_KEY_ID`, ...), as `docs/training.md` documents; DataLoader workers inherit them.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from shard_fixtures import good_samples, make_datamodule, write_shards

from lvlm.data.manifest import build_manifest
from lvlm.data.report import read_bad_samples
from lvlm.data.shard_io import expand_pattern, list_keys

pytest.importorskip("s3fs")
moto_server = pytest.importorskip("moto.server")
boto3 = pytest.importorskip("boto3")

SHARDS = [good_samples("a", 4), good_samples("b", 3), good_samples("c", 2)]
KEYS = [s["__key__"] for shard in SHARDS for s in shard]
BASE = "s3://lvlm-data/sets/web"


@pytest.fixture(scope="module")
def bucket(tmp_path_factory: pytest.TempPathFactory):
    """Three shards and a manifest listing them uploaded to `s3://lvlm-data/sets/` on a moto server."""
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto's request log
    server = moto_server.ThreadedMotoServer("127.0.0.1", 0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    with pytest.MonkeyPatch.context() as env:
        env.setenv("AWS_ENDPOINT_URL", f"http://{host}:{port}")
        env.setenv("AWS_ACCESS_KEY_ID", "lvlm-test")
        env.setenv("AWS_SECRET_ACCESS_KEY", "lvlm-test")
        env.setenv("AWS_DEFAULT_REGION", "us-east-1")
        root = tmp_path_factory.mktemp("s3")
        write_shards(root, "web", SHARDS)
        client = boto3.client("s3")
        client.create_bucket(Bucket="lvlm-data")
        for path in sorted(root.glob("web-*.tar")):
            client.upload_file(str(path), "lvlm-data", f"sets/{path.name}")
        shards = [
            {"url": f"web-{i:03d}.tar", "samples": len(s), "samples_by_modality": {}} for i, s in enumerate(SHARDS)
        ]
        client.put_object(Bucket="lvlm-data", Key="sets/manifest.json", Body=json.dumps(build_manifest(shards, {})))
        yield client
    server.stop()


def test_braces_globs_and_manifests_expand_to_s3_urls(bucket) -> None:
    urls = [f"{BASE}-{i:03d}.tar" for i in range(3)]
    assert expand_pattern(f"{BASE}-{{000..002}}.tar") == urls
    assert expand_pattern(f"{BASE}-*.tar") == urls
    assert expand_pattern("s3://lvlm-data/sets/manifest.json") == urls
    assert [key for url in urls for key in list_keys(url, lambda err: False)] == KEYS


def test_training_and_validation_read_every_s3_sample(bucket, tmp_path: Path) -> None:
    single = make_datamodule(
        tmp_path / "single",
        sources={"train": [{"pattern": "s3://lvlm-data/sets/manifest.json"}]},
        sampling={"mode": "single_pass", "batches_per_epoch": None},
        loader={"num_workers": 2},
    )
    batches = list(single.train_dataloader())
    assert sorted(k for b in batches for k in b["keys"]) == sorted(KEYS)
    assert sorted(len(b["keys"]) for b in batches) == [1, 2, 2, 2, 2]  # 9 samples in batches of 2
    packed = make_datamodule(
        tmp_path / "packed",
        sources={"train": [{"pattern": f"{BASE}-*.tar"}]},
        sampling={"mode": "single_pass", "batches_per_epoch": None},
        loader={"max_tokens_per_batch": 128, "num_workers": 2},
    )
    rows = list(packed.train_dataloader())
    assert sorted(k for b in rows if not b.get("filler") for k in b["keys"]) == sorted(KEYS)
    assert all(b["input_ids"].shape[0] == 1 for b in rows) and len(rows) < len(KEYS)
    resampled = make_datamodule(
        tmp_path / "resampled", sources={"train": [{"pattern": f"{BASE}-*.tar"}]}, loader={"num_workers": 2}
    )
    keys = [k for b in resampled.train_dataloader() for k in b["keys"]]
    assert len(keys) == 8 and set(keys) <= set(KEYS)
    val = make_datamodule(tmp_path / "val", sources={"val": [{"pattern": f"{BASE}-{{000..002}}.tar"}]})
    assert [k for b in val.val_dataloader() for k in b["keys"]] == KEYS


def test_a_missing_s3_object_is_reported_by_url_and_skipped(bucket, tmp_path: Path) -> None:
    missing = f"{BASE}-003.tar"
    dm = make_datamodule(
        tmp_path,
        sources={"train": [{"pattern": f"{BASE}-{{001..003}}.tar"}], "val": [{"pattern": f"{BASE}-{{001..003}}.tar"}]},
        sampling={"mode": "single_pass", "batches_per_epoch": None},
    )
    assert [k for b in dm.val_dataloader() for k in b["keys"]] == KEYS[4:]
    assert sorted(k for b in dm.train_dataloader() for k in b["keys"]) == sorted(KEYS[4:])
    errors = read_bad_samples(tmp_path)
    assert {e["split"] for e in errors} == {"train", "val"} and len(errors) == 2
    assert all(e["detail"].startswith(f"RuntimeError: cannot open shard {missing}: FileNotFoundError") for e in errors)
