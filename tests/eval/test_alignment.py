"""Alignment measures on inputs whose answer is known: identical spaces, rotations, shuffled pairs."""

from __future__ import annotations

import pytest
import torch

from lvlm.eval.alignment import alignment_scores, linear_cka, norm_summary, retrieval_top1


def _rotation(d: int, seed: int) -> torch.Tensor:
    q, _ = torch.linalg.qr(torch.randn(d, d, generator=torch.Generator().manual_seed(seed), dtype=torch.float64))
    return q.float()


def test_identical_spaces_retrieve_every_partner_and_have_cka_one():
    x = torch.randn(64, 16, generator=torch.Generator().manual_seed(0))
    assert retrieval_top1(x, x) == (1.0, 1.0)
    assert linear_cka(x, x) == pytest.approx(1.0, abs=1e-9)


def test_cka_sees_the_same_geometry_retrieval_needs_the_same_coordinates():
    x = torch.randn(64, 16, generator=torch.Generator().manual_seed(1))
    assert retrieval_top1(x, 3.0 * x) == (1.0, 1.0)  # cosine ignores scale
    rotated = 3.0 * x @ _rotation(16, 2)
    assert linear_cka(x, rotated) == pytest.approx(1.0, abs=1e-6)
    # A rotated space keeps every distance but not the axes: a shared projector cannot serve both as one.
    assert max(retrieval_top1(x, rotated)) < 0.3


def test_shuffled_pairs_fall_to_chance():
    x = torch.randn(256, 16, generator=torch.Generator().manual_seed(3))
    shuffled = x[torch.randperm(256, generator=torch.Generator().manual_seed(4))]
    a_to_b, b_to_a = retrieval_top1(x, shuffled)
    assert a_to_b < 0.03 and b_to_a < 0.03  # chance is 1/256; a fixed point of the permutation is a hit
    assert linear_cka(x, shuffled) < 0.15  # the biased estimator's floor at n=256, d=16 (about d/n)
    scores = alignment_scores(x, x)
    assert scores["retrieval_chance"] == 1 / 256 and scores["cka"] == pytest.approx(1.0, abs=1e-9)
    assert scores["cka_shuffled"] < 0.15 and scores["cka_normalized"] == pytest.approx(1.0, abs=1e-9)


def test_cka_takes_two_widths_but_retrieval_needs_one():
    x = torch.randn(32, 8, generator=torch.Generator().manual_seed(5))
    wide = torch.cat([x, torch.zeros(32, 4)], dim=1)  # the same points in a wider space
    assert linear_cka(x, wide) == pytest.approx(1.0, abs=1e-9)
    with pytest.raises(ValueError, match="one width"):
        retrieval_top1(x, wide)
    with pytest.raises(ValueError, match="same n"):
        linear_cka(x, wide[:16])
    assert linear_cka(x, torch.ones(32, 3)) == 0.0  # a constant side carries no structure


def test_norm_summary_of_known_vectors():
    summary = norm_summary(torch.tensor([[[3.0, 4.0], [0.0, 1.0]]]))  # norms 5 and 1, any leading shape
    assert summary["mean"] == pytest.approx(3.0)
    assert summary["p99"] == pytest.approx(1 + 0.99 * 4)


def test_centring_removes_a_shared_offset_that_hides_the_pairs():
    x = torch.randn(64, 16, generator=torch.Generator().manual_seed(6))
    cone = torch.full((16,), 50.0)  # one large direction common to every row (the cone), a gap between sets
    gap = torch.zeros(16)
    gap[0] = 30.0
    a, b = x + cone, 0.5 * x + gap
    assert retrieval_top1(a, b) == (1.0, 1.0)
    assert max(retrieval_top1(a, b, center=False)) < 0.2
