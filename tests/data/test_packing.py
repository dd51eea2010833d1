"""Packing: first-fit-decreasing bins under a token budget, the packed row layout, and packed training batches."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
import torch
from shard_fixtures import good_samples, make_datamodule, write_shards
from tokenizer_fixtures import tiny_tokenizer

from lvlm.data.collate import ProcessedSample
from lvlm.data.packing import PackingCollator, first_fit_decreasing, pack_batches

TOK = tiny_tokenizer()
IMG, VID = TOK.convert_tokens_to_ids("<image>"), TOK.convert_tokens_to_ids("<video>")


def test_first_fit_decreasing_fills_bins_under_the_budget() -> None:
    lengths = [7, 5, 4, 3, 3, 2, 2, 1]  # 27 tokens: three bins of 10 at best
    bins = first_fit_decreasing(lengths, 10)
    assert sorted(i for b in bins for i in b) == list(range(8))
    assert all(sum(lengths[i] for i in b) <= 10 for b in bins) and len(bins) == 3


class _Prepared:  # the two attributes pack_batches reads from a PreparedSample
    def __init__(self, n: int, media: bool) -> None:
        self.tokens, self.media = [0] * n, [("slot", b"")] if media else []


def test_pack_batches_keeps_bins_full_and_modalities_apart() -> None:
    rng = random.Random(0)
    samples = [_Prepared(rng.choice([30, 70, 110]), media=i % 3 != 0) for i in range(200)]
    bins = list(pack_batches(iter(samples), 256, random.Random(1), by_modality=True, buffer=32))
    assert sorted(id(s) for b in bins for s in b) == sorted(id(s) for s in samples)  # all, once
    assert all(sum(len(s.tokens) for s in b) <= 256 for b in bins)
    assert all(len({bool(s.media) for s in b}) == 1 for b in bins)
    useful = sum(len(s.tokens) for s in samples) / (256 * len(bins))
    assert useful > 0.9


def test_packing_collator_restarts_positions_and_masks_each_first_token() -> None:
    a = ProcessedSample("a", torch.tensor([1, 5, 6]), torch.tensor([-100, -100, 6]), [("images", torch.zeros(3, 2, 2))])
    b = ProcessedSample("b", torch.tensor([1, 7]), torch.tensor([1, 7]), modality="text")
    batch = PackingCollator()([a, b])
    assert batch["input_ids"].tolist() == [[1, 5, 6, 1, 7]] and batch["position_ids"].tolist() == [[0, 1, 2, 0, 1]]
    assert batch["labels"].tolist() == [[-100, -100, 6, -100, 7]] and "attention_mask" not in batch
    assert batch["images"].shape == (1, 3, 2, 2) and batch["keys"] == ["a", "b"]


@pytest.fixture(scope="module")
def pattern(tmp_path_factory: pytest.TempPathFactory) -> str:
    return write_shards(tmp_path_factory.mktemp("shards"), "pack", [good_samples("p", 15)])


def test_training_batches_are_packed_rows_under_the_budget(pattern, tmp_path: Path) -> None:
    settings = {
        "sources": {"train": [{"pattern": pattern}]},
        "loader": {"max_tokens_per_batch": 128},
        "sampling": {"batches_per_epoch": 5},
    }
    batches = list(make_datamodule(tmp_path / "a", **settings).train_dataloader())
    assert len(batches) == 5
    for batch in batches:
        ids, positions = batch["input_ids"], batch["position_ids"]
        assert ids.shape[0] == 1 and ids.shape == positions.shape == batch["labels"].shape and ids.shape[1] <= 128
        starts = (positions[0] == 0).nonzero().squeeze(-1)
        assert len(starts) == len(batch["keys"]) and starts[0] == 0
        assert (batch["labels"][0, starts] == -100).all()
        assert (ids == IMG).sum() == 4 * batch.get("images", torch.zeros(0)).shape[0]
        assert (ids == VID).sum() == 4 * 3 * batch.get("videos", torch.zeros(0)).shape[0]
    assert sum(len(b["keys"]) for b in batches) >= 2 * len(batches)  # several samples per row
    # mid-epoch resume with packing repeats the uninterrupted batches
    interrupted = make_datamodule(tmp_path / "b", **settings)
    iterator = iter(interrupted.train_dataloader())
    next(iterator), next(iterator)
    state = interrupted.state_dict()
    del iterator
    resumed = make_datamodule(tmp_path / "c", **settings)
    resumed.load_state_dict(state)
    assert [b["keys"] for b in resumed.train_dataloader()] == [b["keys"] for b in batches[2:]]


def test_a_budget_below_max_length_is_refused(pattern, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"max_tokens_per_batch \(32\) must be at least data.max_length"):
        make_datamodule(tmp_path, sources={"train": [{"pattern": pattern}]}, loader={"max_tokens_per_batch": 32})
