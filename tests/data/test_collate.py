"""Collation: padding sides, label padding, media stacking order, text-only rows add no media."""

from __future__ import annotations

import pytest
import torch

from lvlm.data.collate import Collator, ProcessedSample

PAD = 3


def image(value: float) -> torch.Tensor:
    return torch.full((3, 4, 4), value)


def video(value: float) -> torch.Tensor:
    return torch.full((2, 3, 4, 4), value)


SAMPLES = [
    ProcessedSample("a", torch.tensor([1, 10, 11]), torch.tensor([-100, 10, 11]), [("images", image(1.0))], "image"),
    ProcessedSample("b", torch.tensor([1, 12]), torch.tensor([-100, 12]), [], "text", {"answer": "x"}),
    ProcessedSample(
        "c",
        torch.tensor([1, 13, 14, 15, 16]),
        torch.tensor([-100, -100, -100, 15, 16]),
        [("videos", video(2.0)), ("images", image(3.0)), ("images", image(4.0))],
        "video+image",
    ),
]


def test_right_padding_for_training() -> None:
    batch = Collator(PAD)(SAMPLES)
    assert batch["input_ids"].tolist() == [[1, 10, 11, PAD, PAD], [1, 12, PAD, PAD, PAD], [1, 13, 14, 15, 16]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1, 0, 0], [1, 1, 0, 0, 0], [1, 1, 1, 1, 1]]
    assert batch["labels"].tolist() == [
        [-100, 10, 11, -100, -100],
        [-100, 12, -100, -100, -100],
        [-100, -100, -100, 15, 16],
    ]
    assert batch["input_ids"].dtype == batch["attention_mask"].dtype == batch["labels"].dtype == torch.long


def test_left_padding_for_generation_without_labels() -> None:
    prompts = [ProcessedSample(s.key, s.input_ids, None, s.media, s.modality, s.meta) for s in SAMPLES]
    batch = Collator(PAD, padding_side="left")(prompts)
    assert batch["input_ids"].tolist() == [[PAD, PAD, 1, 10, 11], [PAD, PAD, PAD, 1, 12], [1, 13, 14, 15, 16]]
    assert batch["attention_mask"].tolist() == [[0, 0, 1, 1, 1], [0, 0, 0, 1, 1], [1, 1, 1, 1, 1]]
    assert "labels" not in batch
    assert batch["meta"][1] == {"answer": "x"}


def test_media_stacked_in_sample_then_marker_order() -> None:
    batch = Collator(PAD)(SAMPLES)
    assert batch["images"].shape == (3, 3, 4, 4) and batch["videos"].shape == (1, 2, 3, 4, 4)
    assert batch["images"][:, 0, 0, 0].tolist() == [1.0, 3.0, 4.0]
    assert batch["keys"] == ["a", "b", "c"] and batch["modalities"] == ["image", "text", "video+image"]


def test_text_only_batch_has_no_media_keys() -> None:
    batch = Collator(PAD)([SAMPLES[1], SAMPLES[1]])
    assert set(batch) == {"input_ids", "attention_mask", "labels", "keys", "modalities", "meta"}


def test_shape_mismatch_names_the_samples() -> None:
    odd = ProcessedSample("d", torch.tensor([1]), torch.tensor([-100]), [("images", torch.zeros(3, 8, 8))], "image")
    with pytest.raises(ValueError, match=r"'images'.*d: \(3, 8, 8\)"):
        Collator(PAD)([SAMPLES[0], odd])
