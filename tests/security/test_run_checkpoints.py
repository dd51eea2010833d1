"""Training-run checkpoints (Lightning ``.ckpt``, sharded DCP folders) never run code, in every command reading them.

Each payload is refused with exit code 2 and a message naming the file; its marker never appears. The same
command on the benign twin succeeds. (Class paths in hyper-parameters are the recipes issue's; not tested here.)
"""

from __future__ import annotations

import pickle

import pytest
import torch

from lvlm.models.checkpoints.dcp import METADATA_FILE
from tests.apps.cli_runner import lvlm
from tests.security.payloads import LORA, Payload, run_checkpoint, run_module, write_dcp
from tests.training.tiny import write_recipe


@pytest.fixture(scope="module")
def plain(tokenizer_dir):
    return run_module(tokenizer_dir)


@pytest.fixture(scope="module")
def lora(tokenizer_dir):
    return run_module(tokenizer_dir, lora=LORA)


@pytest.mark.parametrize("command", ["convert", "merge-lora"])
def test_pickled_code_in_a_ckpt_is_refused(command, lora, tmp_path, marker, capsys):
    good, bad = tmp_path / "good.ckpt", tmp_path / "bad.ckpt"
    torch.save(run_checkpoint(lora), good)
    torch.save(run_checkpoint(lora, optimizer_states=[Payload(marker)]), bad)
    code, out = lvlm(capsys, command, "--checkpoint", bad, "--out", tmp_path / "out")
    assert code == 2 and str(bad) in out and "would run code" in out
    assert not (tmp_path / "out").exists()
    assert lvlm(capsys, command, "--checkpoint", good, "--out", tmp_path / "out")[0] == 0
    assert (tmp_path / "out" / "lvlm_config.json").is_file()


@pytest.mark.parametrize("command", ["convert", "merge-lora"])
def test_a_ckpts_export_paths_never_choose_where_the_command_writes(command, lora, tmp_path, capsys):
    hijack = tmp_path / "hijack"
    checkpoint = run_checkpoint(lora)
    checkpoint["hyper_parameters"] |= {"export_dir": str(hijack / "model"), "export_projector": str(hijack / "p.st")}
    torch.save(checkpoint, tmp_path / "run.ckpt")
    assert lvlm(capsys, command, "--checkpoint", tmp_path / "run.ckpt", "--out", tmp_path / "out")[0] == 0
    assert (tmp_path / "out" / "lvlm_config.json").is_file() and not hijack.exists()


def dcp_payloads(folder, module, marker, kind: str):
    """A DCP folder whose ``kind`` part is crafted: the .metadata pickle, a non-tensor item, a storage path."""
    if kind == "item":  # torch would read this item with weights_only=False
        return write_dcp(folder, module, trainer_state=Payload(marker))
    write_dcp(folder, module)
    metadata = folder / METADATA_FILE
    if kind == "metadata":
        metadata.write_bytes(pickle.dumps(Payload(marker)))
    elif kind == "nested":  # the real Metadata, carrying a payload inside it
        original = pickle.loads(metadata.read_bytes())
        original.planner_data = {"x": Payload(marker)}
        metadata.write_bytes(pickle.dumps(original))
    elif kind == "outside":  # a storage file outside the folder (a benign one: reading it is what is refused)
        original = pickle.loads(metadata.read_bytes())
        (folder.parent / "elsewhere.distcp").write_bytes((folder / "__0_0.distcp").read_bytes())
        for info in original.storage_data.values():
            info.relative_path = "../elsewhere.distcp"
        metadata.write_bytes(pickle.dumps(original))
    return folder


@pytest.mark.parametrize("kind", ["metadata", "nested", "item", "outside"])
@pytest.mark.parametrize("command", ["convert", "merge-lora"])
def test_crafted_sharded_checkpoints_are_refused(command, kind, lora, tmp_path, marker, capsys):
    bad = dcp_payloads(tmp_path / "bad" / "step=2.ckpt", lora, marker, kind)
    code, out = lvlm(capsys, command, "--checkpoint", bad, "--out", tmp_path / "out")
    assert code == 2 and str(bad) in out, out
    assert not (tmp_path / "out").exists()
    good = write_dcp(tmp_path / "good" / "step=2.ckpt", lora)
    assert lvlm(capsys, command, "--checkpoint", good, "--out", tmp_path / "out")[0] == 0


@pytest.mark.parametrize("kind", ["metadata", "item"])
def test_fit_resume_from_a_crafted_sharded_checkpoint_is_refused(kind, plain, tokenizer_dir, tmp_path, marker, capsys):
    """torch's own reader (which Lightning's FSDP2 resume uses) unpickles these; lvlm checks them first."""
    bad = dcp_payloads(tmp_path / "run" / "step=2.ckpt", plain, marker, kind)
    recipe = write_recipe(tmp_path / "r.yaml", tokenizer_dir, trainer={"max_steps": 1, "logger": False})
    code, out = lvlm(capsys, "fit", "-c", recipe, f"--ckpt_path={bad}", f"--trainer.default_root_dir={tmp_path}")
    assert code == 2 and str(bad) in out, out


@pytest.mark.parametrize("damage", ["truncated", "not_metadata", "bad_storage"])
def test_damaged_sharded_metadata_is_refused_with_the_file_named(damage, lora, tmp_path, capsys):
    folder = write_dcp(tmp_path / "run" / "step=2.ckpt", lora)
    metadata = folder / METADATA_FILE
    if damage == "truncated":
        metadata.write_bytes(metadata.read_bytes()[:100])
    elif damage == "not_metadata":
        metadata.write_bytes(pickle.dumps({"state_dict_metadata": {}}))
    else:
        original = pickle.loads(metadata.read_bytes())
        original.storage_data = ["__0_0.distcp"]
        metadata.write_bytes(pickle.dumps(original))
    code, out = lvlm(capsys, "convert", "--checkpoint", folder, "--out", tmp_path / "out")
    assert code == 2 and str(metadata) in out, out


def test_fit_resume_from_a_ckpt_with_pickled_code_never_runs_it(plain, tokenizer_dir, tmp_path, marker, capsys):
    """Lightning reads a `.ckpt` with torch's weights-only unpickler: refused (the marker fixture checks)."""
    torch.save(run_checkpoint(plain, optimizer_states=[Payload(marker)]), tmp_path / "bad.ckpt")
    recipe = write_recipe(tmp_path / "r.yaml", tokenizer_dir, trainer={"max_steps": 1, "logger": False})
    args = ["fit", "-c", recipe, f"--ckpt_path={tmp_path / 'bad.ckpt'}", f"--trainer.default_root_dir={tmp_path}"]
    with pytest.raises((SystemExit, pickle.UnpicklingError)) as refused:
        code, _ = lvlm(capsys, *args)
        raise SystemExit(code)
    assert refused.type is pickle.UnpicklingError or refused.value.code != 0
