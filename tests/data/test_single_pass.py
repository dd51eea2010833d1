"""The exact single pass: every sample once per epoch over ranks and workers, equal batch counts, exact resume."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from shard_fixtures import good_samples, make_datamodule, write_shards

from lvlm.data.single_pass import batches_per_rank, plan_worker

INDEX = [(f"s{i}.tar", tuple(f"s{i}-{j}" for j in range(n))) for i, n in enumerate([10, 10, 5, 1, 7])]  # 33
ALL_KEYS = sorted(key for _, keys in INDEX for key in keys)


@pytest.mark.parametrize(("world_size", "num_workers", "batch_size"), [(2, 2, 2), (3, 2, 4), (4, 3, 1), (1, 1, 33)])
def test_plans_cover_every_sample_once_with_equal_batch_counts(world_size, num_workers, batch_size) -> None:
    for epoch in (0, 1):
        seen, counts = [], []
        for rank in range(world_size):
            plans = [
                plan_worker(INDEX, 7, epoch, rank, world_size, batch_size, w, num_workers) for w in range(num_workers)
            ]
            sizes = [size for plan in plans for size in plan.batch_sizes]
            counts.append(len(sizes))
            assert max(sizes) - min(sizes) <= 1 and min(sizes) >= 1 and max(sizes) <= batch_size + 1
            for plan in plans:
                assert sum(plan.batch_sizes) == sum(len(keys) for _, keys in plan.shards)
                seen += [key for _, keys in plan.shards for key in keys]
            # The DataLoader's round robin: worker w holds the batches j with j % num_workers == w.
            assert [len(p.batch_sizes) for p in plans] == [
                len(range(w, counts[-1], num_workers)) for w in range(num_workers)
            ]
        assert sorted(seen) == ALL_KEYS
        assert counts == [batches_per_rank(33, world_size, batch_size)] * world_size
    first = plan_worker(INDEX, 7, 0, 0, 2, 2, 0, 1).shards
    assert first != plan_worker(INDEX, 7, 1, 0, 2, 2, 0, 1).shards  # shards reshuffled every epoch


@pytest.fixture(scope="module")
def pattern(tmp_path_factory: pytest.TempPathFactory) -> str:
    shards = [good_samples("a", 10), good_samples("b", 10), good_samples("c", 5)]
    return write_shards(tmp_path_factory.mktemp("shards"), "uneven", shards)


def test_one_epoch_reads_every_sample_once_and_resumes_exactly(pattern, tmp_path: Path) -> None:
    settings = {
        "sources": {"train": [{"pattern": pattern, "weight": 3.0}]},
        "sampling": {"mode": "single_pass", "batches_per_epoch": None, "group_by_modality_length": True},
        "loader": {"batch_size": 3, "num_workers": 2},
    }
    dm = make_datamodule(tmp_path / "a", **settings)
    loader = dm.train_dataloader()
    epoch0 = list(loader)
    keys = [key for batch in epoch0 for key in batch["keys"]]
    everything = [f"{prefix}{i:04d}" for prefix, n in (("a", 10), ("b", 10), ("c", 5)) for i in range(n)]
    assert len(loader) == len(epoch0) == 9 and sorted(keys) == sorted(everything)
    epoch1 = list(loader)
    assert sorted(k for b in epoch1 for k in b["keys"]) == sorted(keys) and [b["keys"] for b in epoch1] != [
        b["keys"] for b in epoch0
    ]

    interrupted = make_datamodule(tmp_path / "b", **settings)
    iterator = iter(interrupted.train_dataloader())
    for _ in range(4):
        next(iterator)
    state = interrupted.state_dict()
    del iterator
    resumed = make_datamodule(tmp_path / "c", **settings)
    resumed.load_state_dict(state)
    after = list(resumed.train_dataloader())
    assert [b["keys"] for b in after] == [b["keys"] for b in epoch0[4:]]
    assert all(torch.equal(g["input_ids"], e["input_ids"]) for g, e in zip(after, epoch0[4:]))


def test_single_pass_refuses_an_epoch_length(pattern, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="epoch length comes from the data|takes the epoch length"):
        make_datamodule(
            tmp_path,
            sources={"train": [{"pattern": pattern}]},
            sampling={"mode": "single_pass", "batches_per_epoch": 3},
        )
