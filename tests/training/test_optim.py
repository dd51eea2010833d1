"""Parameter groups (no decay on biases and norms, projector lr) and the warmup + cosine schedule."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn
from transformers import get_cosine_schedule_with_warmup

from lvlm.training.optim import WarmupCosineLR, param_groups


class Toy(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.projector = nn.Sequential(nn.Linear(4, 4), nn.GELU(), nn.Linear(4, 4))
        self.llm = nn.ModuleDict({"proj": nn.Linear(4, 4), "norm": nn.LayerNorm(4), "frozen": nn.Linear(4, 4)})
        self.llm["frozen"].requires_grad_(False)


def test_groups_split_decay_and_projector():
    groups = {g["name"]: g for g in param_groups(Toy(), weight_decay=0.1, projector_lr=2e-5)}
    assert set(groups) == {"main", "main_no_decay", "projector", "projector_no_decay"}
    assert [p.shape for p in groups["main"]["params"]] == [torch.Size([4, 4])]
    assert len(groups["main_no_decay"]["params"]) == 3  # proj.bias, norm.weight, norm.bias
    assert groups["projector"]["lr"] == 2e-5 and "lr" not in groups["main"]  # the optimizer's lr
    optimizer = torch.optim.AdamW(list(groups.values()), lr=2e-4)
    assert [g["lr"] for g in optimizer.param_groups] == [2e-4, 2e-4, 2e-5, 2e-5]
    assert groups["main_no_decay"]["weight_decay"] == 0.0 and groups["main"]["weight_decay"] == 0.1
    assert sum(len(g["params"]) for g in groups.values()) == 8  # the frozen linear is left out


def test_groups_without_projector_lr_share_the_optimizer_lr_and_decay():
    groups = param_groups(Toy())
    optimizer = torch.optim.SGD(groups, lr=1e-3, weight_decay=0.5)
    assert {g["name"] for g in groups} == {"main", "main_no_decay"}
    assert {g["lr"] for g in optimizer.param_groups} == {1e-3}
    assert [g["weight_decay"] for g in optimizer.param_groups] == [0.5, 0.0]


def test_nothing_trainable_is_an_error():
    with pytest.raises(ValueError, match="no parameter requires grad"):
        param_groups(Toy().requires_grad_(False))


@pytest.mark.parametrize("total", [10, 100, 4922])
def test_schedule_matches_transformers_cosine(total):
    opt = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=1.0)
    reference = get_cosine_schedule_with_warmup(opt, math.ceil(0.03 * total), total)
    ours = WarmupCosineLR(opt, 0.03, total_steps=total).lr_lambdas[0]
    for step in range(total + 1):
        assert ours(step) == pytest.approx(reference.lr_lambdas[0](step), abs=1e-12)
    assert ours(0) == 0.0 and ours(math.ceil(0.03 * total)) == 1.0 and ours(total) == pytest.approx(0.0)


def test_schedule_decays_to_the_min_lr_ratio():
    opt = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=1.0)
    ours = WarmupCosineLR(opt, 0.1, min_lr_ratio=0.1, total_steps=50).lr_lambdas[0]
    assert ours(50) == pytest.approx(0.1) and ours(5) == pytest.approx(1.0)
