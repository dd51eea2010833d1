"""Evaluation streams deliver every sample: a repeated key (adjacent or not, in one shard or several) is
reported and every copy evaluated, over ranks and DataLoader workers; never merged or dropped."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
from shard_fixtures import conv, make_datamodule, write_shards

from lvlm.data.eval_samples import read_samples, sample_keys
from lvlm.data.report import read_bad_samples


def sample(key: str, answer: str) -> dict:
    return {"__key__": key, "json": conv("how many?", answer)}


SHARDS = [
    [sample("a", "one"), sample("d", "two"), sample("b", "three"), sample("d", "four")],
    [sample("c", "five"), sample("c", "six"), sample("d", "seven"), sample("e", "eight")],  # c twice in a row
]
EXPECTED = Counter({"a": 1, "b": 1, "c": 2, "d": 3, "e": 1})


@pytest.fixture(scope="module")
def pattern(tmp_path_factory: pytest.TempPathFactory) -> str:
    return write_shards(tmp_path_factory.mktemp("dup"), "dup", SHARDS)


def test_adjacent_copies_are_two_samples(pattern: str) -> None:
    url = pattern.replace("{000..001}", "001")
    assert sample_keys(url, lambda err: pytest.fail(str(err))) == ["c", "c", "d", "e"]
    read = list(read_samples([url], lambda err: pytest.fail(str(err))))
    assert [s["__key__"] for s in read] == ["c", "c", "d", "e"]
    assert [json.loads(s["json"])["conversations"][1]["value"] for s in read[:2]] == ["five", "six"]


@pytest.mark.parametrize(("world_size", "num_workers"), [(1, 0), (1, 2), (2, 0)])
def test_every_copy_is_delivered_once_and_reported(pattern: str, tmp_path: Path, world_size, num_workers) -> None:
    keys: Counter[str] = Counter()
    texts = []
    for rank in range(world_size):
        dm = make_datamodule(
            tmp_path,
            sources={"val": [{"pattern": pattern}]},
            loader={"num_workers": num_workers},
            rank=rank,
            world_size=world_size,
        )
        for batch in dm.val_dataloader():
            keys.update(batch["keys"])
            texts += [int(ids[mask.bool()].sum()) for ids, mask in zip(batch["input_ids"], batch["attention_mask"])]
    assert keys == EXPECTED  # 8 samples, 8 delivered: no copy merged, dropped or duplicated
    assert len(set(texts)) >= 7  # the copies carry their own content (c five / c six, d two / four / seven)
    report = [e for e in read_bad_samples(tmp_path) if e["reason"] == "duplicate_key"]
    assert sorted(e["key"] for e in report) == ["c", "d"]  # reported once, by rank 0
    assert "appears 3 times" in next(e for e in report if e["key"] == "d")["detail"]
