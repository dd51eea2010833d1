"""Manifests as data sources: written by `lvlm shards`, expanded locally and over HTTP, read by the DataModule."""

from __future__ import annotations

import functools
import json
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml
from media_fixtures import make_media_dir
from shard_fixtures import make_datamodule

from lvlm.apps.shards import main as shards_main
from lvlm.data.manifest import ManifestError, manifest_shards, resolve_shard_url
from lvlm.data.shard_io import expand_pattern, open_shard


def turns(human: str, answer: str) -> list[dict[str, str]]:
    return [{"from": "human", "value": human}, {"from": "gpt", "value": answer}]


@pytest.fixture(scope="module")
def converted(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`lvlm shards` output: 7 samples (3 image, 2 video, 2 text) in 3 shards, one record skipped."""
    root = tmp_path_factory.mktemp("manifest")
    media = make_media_dir(root / "media")
    records = [
        {"id": f"i{i}", "image": "a.jpg", "conversations": turns("<image>\nColour?", f"red {i}")} for i in range(3)
    ]
    records += [{"id": f"v{i}", "video": "v8.mp4", "conversations": turns("<video>\nMoving?", "yes")} for i in range(2)]
    records += [{"id": f"t{i}", "conversations": turns("Hello?", "hi")} for i in range(2)]
    records.insert(4, {"id": "gone", "image": "nope.jpg", "conversations": turns("<image>\nx", "y")})
    (media / "data.json").write_text(json.dumps(records))
    args = [str(media / "data.json"), "--image-folder", str(media / "images"), "--video-folder", str(media / "videos")]
    assert shards_main([*args, "--out", str(root / "out"), "--max-count", "3", "--no-progress"]) == 0
    return root / "out"


def test_the_manifest_counts_shards_samples_modalities_and_skips(converted):
    manifest = json.loads((converted / "manifest.json").read_text())
    assert manifest["samples"] == 7 and manifest["skipped"] == 1
    assert manifest["samples_by_modality"] == {"image": 3, "text": 2, "video": 2}
    assert manifest["skipped_by_reason"] == {"missing_file": 1}
    assert [(s["url"], s["samples"], s["samples_by_modality"]) for s in manifest["shards"]] == [
        ("shard-000000.tar", 3, {"image": 3}),
        ("shard-000001.tar", 3, {"text": 1, "video": 2}),
        ("shard-000002.tar", 1, {"text": 1}),
    ]


def test_a_manifest_expands_into_its_shards(converted):
    shards = [str(converted / f"shard-00000{i}.tar") for i in range(3)]
    assert expand_pattern(str(converted / "manifest.json")) == shards
    other = converted.parent / "other"
    other.mkdir(exist_ok=True)
    (other / "x.tar").write_bytes(b"")
    assert expand_pattern(f"{converted}/manifest.json::{other}/*.tar") == [*shards, str(other / "x.tar")]


def test_the_datamodule_reads_every_sample_of_a_manifest(converted, tmp_path):
    dm = make_datamodule(tmp_path, sources={"val": [{"pattern": str(converted / "manifest.json")}]})
    keys = [key for batch in dm.val_dataloader() for key in batch["keys"]]
    assert keys == ["i0", "i1", "i2", "v0", "v1", "t0", "t1"]
    train = make_datamodule(tmp_path, sources={"train": [{"pattern": str(converted / "manifest.json")}]})
    batch = next(iter(train.train_dataloader()))
    assert set(batch["keys"]) <= set(keys) and len(batch["keys"]) == 2


def test_a_manifest_over_http_lists_http_shards(converted):
    handler = functools.partial(SimpleHTTPRequestHandler, directory=str(converted))
    handler.log_message = lambda *args: None
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        base = f"http://127.0.0.1:{server.server_address[1]}"
        urls = expand_pattern(f"{base}/manifest.json")
        assert urls == [f"{base}/shard-00000{i}.tar" for i in range(3)]
        with open_shard(urls[2]) as stream:
            assert stream.read() == (converted / "shard-000002.tar").read_bytes()
    finally:
        server.shutdown()
        server.server_close()


def test_shard_urls_resolve_against_the_manifest_location():
    assert resolve_shard_url("data/a/manifest.json", "s-0.tar") == "data/a/s-0.tar"
    assert resolve_shard_url("s3://bucket/a/manifest.json", "s-0.tar") == "s3://bucket/a/s-0.tar"
    assert resolve_shard_url("https://host/a/manifest.json", "s-0.tar") == "https://host/a/s-0.tar"
    assert resolve_shard_url("data/a/manifest.json", "/abs/s-0.tar") == "/abs/s-0.tar"


@pytest.mark.parametrize(
    ("manifest", "message"),
    [
        ("not json", "cannot read it as JSON"),
        ({"format": "something"}, "'format' must be 'lvlm-shards-manifest'"),
        ({"format": "lvlm-shards-manifest", "version": 1, "shards": {}}, "'shards' must be a list"),
        ({"format": "lvlm-shards-manifest", "version": 1, "shards": [{"url": "a.tar"}]}, r"shards\[0\].samples"),
        (
            {"format": "lvlm-shards-manifest", "version": 1, "shards": [{"url": "a.tar", "samples": 0}]},
            "lists no sample",
        ),
        (
            {"format": "lvlm-shards-manifest", "version": 1, "shards": [{"url": "gone.tar", "samples": 4}]},
            "1 listed shard.s. missing: .*gone.tar",
        ),
    ],
)
def test_a_bad_manifest_is_refused_naming_the_file_and_field(tmp_path, manifest, message):
    path = tmp_path / "manifest.json"
    path.write_text(manifest if isinstance(manifest, str) else json.dumps(manifest))
    with pytest.raises(ManifestError, match=f"manifest {path}: {message}"):
        manifest_shards(str(path), open_shard)


def test_the_paper_recipes_name_manifests_not_brace_ranges():
    recipes = Path(__file__).resolve().parents[2] / "recipes"
    patterns = []
    for path in recipes.glob("*.yaml"):
        data = (yaml.safe_load(path.read_text()) or {}).get("data") or {}
        patterns += [s["pattern"] for s in ((data.get("init_args") or {}).get("sources") or {}).get("train", [])]
    for path in recipes.glob("ablations/*.yaml"):  # experiments: sources in each stage's overlay
        for stage in yaml.safe_load(path.read_text())["stages"]:
            data = (stage.get("overlay") or {}).get("data") or {}
            patterns += [s["pattern"] for s in ((data.get("init_args") or {}).get("sources") or {}).get("train", [])]
    assert len(patterns) == 14
    assert all(p.startswith("${oc.env:LVLM_DATA,data}/") and p.endswith("/manifest.json") for p in patterns)
