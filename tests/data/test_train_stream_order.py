"""The training stream's sampler and batcher strategies give exactly the batches of the single-class stream they
replaced: the same sample keys, in the same order, for the same seed, over two epochs.

`train_stream_order.json` was recorded from that earlier `TrainStream` (commit "Record the training stream's
batches ...") on these very shards and settings; the quickstart's numbers depend on this order.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from shard_fixtures import bad_samples, good_samples, make_datamodule, write_shards

EXPECTED = Path(__file__).with_name("train_stream_order.json")
RESAMPLED = {"batches_per_epoch": 5, "shuffle_buffer": 8, "seed": 11}
SINGLE = {"mode": "single_pass", "batches_per_epoch": None, "seed": 5}
GROUPED = {"group_by_modality_length": True}
LOADER = {"batch_size": 3}
CASES: dict[str, dict[str, Any]] = {
    "resampled": {"sampling": RESAMPLED, "loader": LOADER},
    "resampled_grouped": {"sampling": RESAMPLED | GROUPED, "loader": LOADER},
    "resampled_packed": {"sampling": RESAMPLED, "loader": LOADER | {"max_tokens_per_batch": 160}},
    "resampled_bad": {"sampling": RESAMPLED, "loader": LOADER, "bad": True},
    "single_pass": {"sampling": SINGLE, "loader": LOADER},
    "single_pass_grouped": {"sampling": SINGLE | GROUPED | {"shuffle_buffer": 4}, "loader": LOADER},
    "single_pass_rank1": {"sampling": SINGLE, "loader": LOADER, "rank": 1, "world_size": 2},
    "packed_single_pass": {"sampling": SINGLE, "loader": LOADER | {"max_tokens_per_batch": 160}},
    "packed_single_pass_rank1": {
        "sampling": SINGLE,
        "loader": LOADER | {"max_tokens_per_batch": 128},
        "rank": 1,
        "world_size": 2,
        "bad": True,
    },
}


@pytest.fixture(scope="module")
def patterns(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("order")
    return {
        "a": write_shards(root, "a", [good_samples("a", 7), good_samples("b", 5), good_samples("c", 9)]),
        "b": write_shards(root, "b", [good_samples("d", 6)]),
        "bad": write_shards(root, "bad", [bad_samples()[:4] + good_samples("e", 3)]),
    }


def epoch_keys(patterns: dict[str, str], run_dir: Path, case: dict[str, Any]) -> list[list[Any]]:
    """Two epochs of the case's training loader: `[keys, filler]` per batch."""
    settings = dict(case)
    sources = [{"pattern": patterns["a"], "weight": 3.0}, {"pattern": patterns["b"], "weight": 1.0}]
    if settings.pop("bad", False):
        sources.append({"pattern": patterns["bad"], "weight": 1.0})
    loader = make_datamodule(run_dir, sources={"train": sources}, **settings).train_dataloader()
    return [[batch["keys"], bool(batch.get("filler", False))] for _ in range(2) for batch in loader]


@pytest.mark.parametrize("name", sorted(CASES))
def test_batches_equal_the_recorded_order(name: str, patterns: dict[str, str], tmp_path: Path) -> None:
    expected = json.loads(EXPECTED.read_text())[name]
    assert epoch_keys(patterns, tmp_path, CASES[name]) == expected
