"""The bad-sample report on real shards: a training stream of bad samples stops, and the report stays bounded.

`lvlm fit` on shards whose every sample was bad once resampled them forever, writing one report line (and one
log line per batch) each; these tests iterate the real `LVLMDataModule`'s training loader on real tars.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
from shard_fixtures import bad_samples, good_samples, make_datamodule, write_shards

import lvlm.data.report
from lvlm.data.report import count_bad_samples, read_bad_samples
from lvlm.data.sample_errors import TooManyBadSamplesError


@pytest.fixture(scope="module")
def shards(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("shards")
    bad = bad_samples()
    return {
        "bad": write_shards(root, "bad", [bad, bad[::-1]]),
        "mixed": write_shards(root, "mixed", [good_samples("a", 7) + bad[:5], bad[5:] + good_samples("b", 3)]),
    }


def test_a_stream_of_only_bad_samples_stops_after_the_limit_naming_the_report(shards, tmp_path, monkeypatch):
    monkeypatch.setattr(lvlm.data.report, "EXAMPLES_PER_REASON", 2)
    dm = make_datamodule(tmp_path, sources={"train": [{"pattern": shards["bad"]}]}, max_consecutive_bad_samples=60)
    with pytest.raises(TooManyBadSamplesError) as caught:
        list(dm.train_dataloader())
    path = tmp_path / "bad_samples.train.rank0.workermain.jsonl"
    message = str(caught.value)
    assert message.startswith("60 bad train samples in a row (max_consecutive_bad_samples) on rank 0")
    assert message.endswith(f"examples (key, reason, detail) in {path}") and "undecodable_video: " in message
    totals = count_bad_samples(tmp_path, "train")
    assert sum(totals.values()) == 60 == dm.bad_sample_counts().total()  # every one counted
    written = Counter(entry["reason"] for entry in read_bad_samples(tmp_path, "train"))
    assert written == {reason: 2 for reason in totals}  # but only the first examples of each reason written
    assert len(path.read_text().splitlines()) == 2 * len(totals)


def test_the_error_from_a_dataloader_worker_is_the_same_one_line(shards, tmp_path):
    dm = make_datamodule(
        tmp_path,
        sources={"train": [{"pattern": shards["bad"]}]},
        loader={"num_workers": 1},
        max_consecutive_bad_samples=30,
    )
    with pytest.raises(TooManyBadSamplesError) as caught:
        list(dm.train_dataloader())
    path = tmp_path / "bad_samples.train.rank0.worker0.jsonl"
    assert str(caught.value).startswith("30 bad train samples in a row (max_consecutive_bad_samples) on rank 0")
    assert str(caught.value).endswith(f" in {path}") and "\n" not in str(caught.value)
    assert sum(count_bad_samples(tmp_path).values()) == 30


def test_a_mix_trains_on_the_good_samples_and_counts_every_bad_one(shards, tmp_path, monkeypatch):
    """The benign twin: runs of bad samples shorter than the limit are skipped, counted and reported."""
    monkeypatch.setattr(lvlm.data.report, "EXAMPLES_PER_REASON", 1)
    dm = make_datamodule(
        tmp_path,
        sources={"train": [{"pattern": shards["mixed"]}]},
        sampling={"batches_per_epoch": 30},
        max_consecutive_bad_samples=20,
    )
    batches = list(dm.train_dataloader())
    assert len(batches) == 30
    keys = [key for batch in batches for key in batch["keys"]]
    assert not any(key.startswith("bad_") for key in keys) and {key[0] for key in keys} == {"a", "b"}
    totals = dm.bad_sample_counts("train")
    assert totals["undecodable_video"] > 1 and set(totals) == {
        "undecodable_video", "bad_json", "undecodable_image", "missing_media", "placeholder_mismatch", "too_long"
    }  # fmt: skip
    written = Counter(entry["reason"] for entry in read_bad_samples(tmp_path, "train"))
    assert written == {reason: 1 for reason in totals}


def test_the_limit_must_be_positive(tmp_path: Path):
    with pytest.raises(ValueError, match="max_consecutive_bad_samples must be 1 or more, or None: 0"):
        make_datamodule(tmp_path, max_consecutive_bad_samples=0)
    assert make_datamodule(tmp_path, max_consecutive_bad_samples=None).max_consecutive_bad_samples is None
    assert make_datamodule(tmp_path).max_consecutive_bad_samples == 1000
