"""The single pass with packing: every sample once per epoch over ranks and workers in token-budget micro-batches,
the same count on every rank (at most one zero-loss filler), lengths read before the epoch, exact resume."""

from __future__ import annotations

import random
from collections import Counter
from pathlib import Path

import pytest
import torch
from shard_fixtures import bad_samples, good_samples, make_datamodule, write_shards

from lvlm.data.length_index import ShardLengths, shard_lengths
from lvlm.data.packed_pass import PackedWorkerPlan, assemble, index_bins, micro_batches_per_rank, plan_packed_worker
from lvlm.data.report import BadSampleReport, read_bad_samples
from lvlm.data.shard_io import expand_pattern, read_shards

RNG = random.Random(3)
INDEX = [
    ShardLengths(
        f"s{i}.tar",
        tuple(f"s{i}-{j}" for j in range(n)),
        tuple(RNG.choice([20, 45, 90, 150]) for _ in range(n)),
        tuple(RNG.random() < 0.7 for _ in range(n)),
    )
    for i, n in enumerate([70, 70, 9, 1, 40])
]
LENGTH = {(s.url, k): n for s in INDEX for k, n in zip(s.keys, s.lengths)}
MULTIMODAL = {(s.url, k): m for s in INDEX for k, m in zip(s.keys, s.multimodal)}


@pytest.mark.parametrize(("world_size", "num_workers", "by_modality"), [(2, 2, False), (3, 2, True), (4, 3, False)])
def test_plans_pack_every_sample_once_with_equal_counts_per_rank(world_size, num_workers, by_modality) -> None:
    bins = index_bins(INDEX, 256, by_modality)
    k = micro_batches_per_rank(sum(len(b) for b in bins), world_size)
    orders = []
    for epoch in (0, 1):
        seen, fillers = [], []
        for rank in range(world_size):
            plans = [
                plan_packed_worker(INDEX, bins, 7, epoch, rank, world_size, w, num_workers) for w in range(num_workers)
            ]
            # The DataLoader's round robin: worker w delivers the rank's micro-batches j with j % num_workers == w.
            counts = [len(p.bins) + (p.filler is not None) for p in plans]
            assert counts == [len(range(w, k, num_workers)) for w in range(num_workers)]
            fillers.append(sum(p.filler is not None for p in plans))
            for plan in plans:
                reads = [(url, key) for url, keys in plan.reads for key in keys]
                assert sorted(reads) == sorted(i for b in plan.bins for i in b)  # exactly its bins' samples
                for b in plan.bins:
                    assert sum(LENGTH[i] for i in b) <= 256
                    assert not by_modality or len({MULTIMODAL[i] for i in b}) == 1
                seen += [i for b in plan.bins for i in b]
            orders.append([b for p in plans for b in p.bins])
        assert sorted(seen) == sorted(LENGTH) and len(seen) == len(LENGTH)  # every sample exactly once
        assert max(fillers) <= 1 and sum(fillers) == world_size * k - sum(len(b) for b in bins)
    assert orders[: len(orders) // 2] != orders[len(orders) // 2 :]  # the order changes between epochs
    useful = sum(LENGTH.values()) / (256 * sum(len(b) for b in bins))
    assert useful > 0.8  # nearly full rows (the shards' last windows are the emptiest)


class _Sample:  # the two attributes `assemble` reads from a PreparedSample
    def __init__(self, url: str, key: str) -> None:
        self.url, self.key = url, key


def test_micro_batches_missing_samples_are_yielded_once_reading_passes_them() -> None:
    a, b = ("a.tar", ("1", "2", "3")), ("b.tar", ("1", "2"))
    plan = PackedWorkerPlan(
        reads=(a, b),
        bins=((("a.tar", "1"), ("b.tar", "1")), (("a.tar", "2"), ("a.tar", "3")), (("b.tar", "2"),)),
        filler=(("a.tar", "1"),),
        filler_reads=(("a.tar", ("1",)),),
    )
    arrived = [_Sample("a.tar", "1"), _Sample("a.tar", "3"), _Sample("b.tar", "1")]  # a.tar 2 and b.tar 2 lost
    out = list(assemble(iter(arrived), plan, lambda runs: iter([_Sample("a.tar", "1")])))
    keys = [([(s.url, s.key) for s in batch], filler) for batch, filler in out]
    assert keys == [
        ([("a.tar", "1"), ("b.tar", "1")], False),
        ([("a.tar", "3")], False),
        ([("a.tar", "3")], True),  # every sample lost: a zero-loss copy of the previous micro-batch
        ([("a.tar", "1")], True),  # the planned filler, read again
    ]


@pytest.fixture(scope="module")
def pattern(tmp_path_factory: pytest.TempPathFactory) -> str:
    bad = [s for s in bad_samples() if s["__key__"] in ("bad_not_json", "bad_over_long")]  # fail to tokenize
    shards = [good_samples("a", 12), good_samples("b", 12) + bad, good_samples("c", 5)]
    return write_shards(tmp_path_factory.mktemp("shards"), "packed", shards)


def test_lengths_are_read_without_media_and_equal_the_streamed_ones(pattern, tmp_path: Path) -> None:
    dm = make_datamodule(tmp_path)
    processor = dm._processor("train", augment=False, keep_meta=False)
    for url in expand_pattern(pattern):
        local = shard_lengths(url, processor, BadSampleReport(tmp_path / "local", "train"))
        streamed = shard_lengths(f"pipe:cat {url}", processor, BadSampleReport(tmp_path / "pipe", "train"))
        prepared = [
            processor.prepare(raw) for raw in read_shards([url], lambda err: False) if "bad" not in raw["__key__"]
        ]
        assert local.keys == streamed.keys == tuple(p.key for p in prepared)
        assert local.lengths == streamed.lengths == tuple(len(p.tokens) for p in prepared)
        assert local.multimodal == tuple(bool(p.media) for p in prepared)
    assert Counter(e["reason"] for e in read_bad_samples(tmp_path / "local")) == {"bad_json": 1, "too_long": 1}


SETTINGS = {
    "sampling": {"mode": "single_pass", "batches_per_epoch": None},
    "loader": {"max_tokens_per_batch": 128, "num_workers": 2},
}


def test_two_ranks_with_two_workers_read_every_sample_once_in_packed_rows(pattern, tmp_path: Path) -> None:
    everything = sorted(s["__key__"] for p, n in (("a", 12), ("b", 12), ("c", 5)) for s in good_samples(p, n))
    ranks = [
        make_datamodule(tmp_path, sources={"train": [{"pattern": pattern}]}, rank=r, world_size=2, **SETTINGS)
        for r in range(2)
    ]
    epochs = [[list(dm.train_dataloader()) for dm in ranks] for _ in range(2)]
    for batches in epochs:
        assert len(batches[0]) == len(batches[1]) == len(ranks[0].train_dataloader()) == ranks[1].batches_per_epoch
        real = [b for rank in batches for b in rank if not b.get("filler")]
        assert sorted(k for b in real for k in b["keys"]) == everything
        assert sum(1 for rank in batches for b in rank if b.get("filler")) <= 1
        for batch in (b for rank in batches for b in rank):
            positions = batch["position_ids"][0]
            assert batch["input_ids"].shape == batch["labels"].shape == (1, positions.shape[0])
            assert positions.shape[0] <= 128 and (positions == 0).sum() == len(batch["keys"])
        assert sum(len(b["keys"]) for b in real) > 2 * len(real)  # several samples per row
    assert [b["keys"] for b in epochs[0][0]] != [b["keys"] for b in epochs[1][0]]  # reshuffled per epoch
    reported = read_bad_samples(tmp_path, "train")
    assert sorted(e["key"] for e in reported) == ["bad_not_json", "bad_over_long"] and {
        e["rank"] for e in reported
    } == {0}

    interrupted = make_datamodule(
        tmp_path / "b", sources={"train": [{"pattern": pattern}]}, rank=1, world_size=2, **SETTINGS
    )
    iterator = iter(interrupted.train_dataloader())
    for _ in range(3):
        next(iterator)
    state = interrupted.state_dict()
    del iterator
    resumed = make_datamodule(
        tmp_path / "c", sources={"train": [{"pattern": pattern}]}, rank=1, world_size=2, **SETTINGS
    )
    resumed.load_state_dict(state)
    after = list(resumed.train_dataloader())
    assert [b["keys"] for b in after] == [b["keys"] for b in epochs[0][1][3:]]
    assert all(torch.equal(a["input_ids"], e["input_ids"]) for a, e in zip(after, epochs[0][1][3:]))


def test_a_rank_with_one_bin_fewer_ends_with_a_zero_loss_filler(tmp_path: Path) -> None:
    pattern = write_shards(tmp_path / "shards", "one", [good_samples("a", 3)])
    # each of the 3 samples (> 32 tokens) fills a row
    settings = SETTINGS | {"loader": {"max_tokens_per_batch": 64, "num_workers": 2}}
    ranks = [
        make_datamodule(tmp_path, sources={"train": [{"pattern": pattern}]}, rank=r, world_size=2, **settings)
        for r in range(2)
    ]
    batches = [list(dm.train_dataloader()) for dm in ranks]
    assert [len(b) for b in batches] == [2, 2]  # 3 bins: 1 for rank 0, 2 for rank 1
    assert [b.get("filler", False) for rank in batches for b in rank] == [False, True, False, False]
    real = [k for rank in batches for b in rank if not b.get("filler") for k in b["keys"]]
    assert sorted(real) == ["a0000", "a0001", "a0002"]
    # the filler is rank 0's own bin again (read again by the other worker), trained with zero loss
    assert batches[0][1]["keys"] == batches[0][0]["keys"]
    assert torch.equal(batches[0][1]["input_ids"], batches[0][0]["input_ids"])
