"""``lvlm fit`` command-line conveniences: a field of a settings group set to null reaches the group as null."""

from __future__ import annotations

import dataclasses
import inspect
import typing

import pytest
import yaml

from lvlm.apps.fit_args import GROUPS, rewrite_args
from lvlm.core.recipes import packaged_recipe
from lvlm.data.datamodule import LVLMDataModule
from lvlm.training.module import LVLMModule
from tests.apps.cli_runner import lvlm


def groups(cls: type) -> tuple[str, ...]:
    hints = typing.get_type_hints(cls.__init__)
    return tuple(
        name for name in inspect.signature(cls.__init__).parameters if dataclasses.is_dataclass(hints.get(name))
    )


def test_the_groups_are_the_dataclass_arguments_of_the_data_module():
    assert groups(LVLMDataModule) == GROUPS["data"]


@pytest.mark.parametrize(
    "argv",
    [
        ["--data.sampling.batches_per_epoch=null"],
        ["--data.init_args.sampling.batches_per_epoch", "null"],
        ["--data.sampling.batches_per_epoch", "None"],
    ],
)
def test_a_null_field_of_a_group_becomes_a_mapping_of_that_group(argv):
    assert rewrite_args(argv) == ["--data.init_args.sampling", "{batches_per_epoch: null}"]


def test_other_flags_pass_unchanged():
    argv = ["--data.sampling.batches_per_epoch=5", "--data.init_args.template.init_args.system", "null", "--x=null"]
    assert rewrite_args(argv) == argv


@pytest.mark.parametrize("flag", [f"--model.{group}" for group in groups(LVLMModule)])
def test_the_model_groups_pass_unchanged(flag):
    assert rewrite_args([f"{flag}.anything=null"]) == [f"{flag}.anything=null"]


def test_a_null_field_of_a_model_group_is_null(capsys):
    recipe, cpu = packaged_recipe("finetune_lora.yaml"), packaged_recipe("trainer/cpu.yaml")
    code, before = lvlm(capsys, "fit", "-c", recipe, "-c", cpu, "--print_config")
    assert code == 0 and yaml.safe_load(before)["model"]["optimisation"]["lora"] is not None, before
    code, out = lvlm(capsys, "fit", "-c", recipe, "-c", cpu, "--model.optimisation.lora=null", "--print_config")
    assert code == 0, out
    assert yaml.safe_load(out)["model"]["optimisation"]["lora"] is None


def test_a_null_override_keeps_the_other_fields_of_the_group(capsys):
    stage2, cpu = packaged_recipe("quickstart/stage2.yaml"), packaged_recipe("trainer/cpu.yaml")
    base = ["fit", "-c", stage2, "-c", cpu, "--print_config"]
    code, before = lvlm(capsys, *base)
    assert code == 0, before
    code, after = lvlm(capsys, *base, "--data.sampling.batches_per_epoch", "null")
    assert code == 0, after
    sampling = yaml.safe_load(before)["data"]["init_args"]["sampling"]
    assert sampling["batches_per_epoch"] is not None
    assert yaml.safe_load(after)["data"]["init_args"]["sampling"] == {**sampling, "batches_per_epoch": None}
