"""Training-run checkpoints (Lightning ``.ckpt``, sharded DCP folders) never run code, in every command reading them.

Each payload is refused with exit code 2 and a message naming the file; its marker never appears. The same
command on the benign twin succeeds. (Class paths in hyper-parameters are the recipes issue's; not tested here.)
"""

from __future__ import annotations

import pickle
import shutil
import subprocess
import sys

import pytest
import torch

from lvlm.apps.recipe_runner import lightning_main
from lvlm.models.checkpoints.dcp import METADATA_FILE
from tests.apps.cli_runner import lvlm
from tests.security.payloads import LORA, Payload, run_checkpoint, run_module, write_dcp
from tests.training.launch import REPO, env, run
from tests.training.tiny import write_recipe

# The refusal each crafted part of a sharded checkpoint gets (os.system pickles as posix.system)
DCP_REFUSALS = {
    "metadata": "refused to load `posix.system`",
    "nested": "refused to load `posix.system`",
    "item": "not plain data",
    "outside": "is not a path inside",
}


@pytest.fixture(scope="module")
def plain(tokenizer_dir):
    return run_module(tokenizer_dir)


@pytest.fixture(scope="module")
def lora(tokenizer_dir):
    return run_module(tokenizer_dir, optimisation={"lora": LORA})


@pytest.fixture(scope="module")
def fitted(tokenizer_dir, tmp_path_factory):
    """A real one-step ``lvlm fit`` run's checkpoint (Lightning's own ``.ckpt``) and its recipe."""
    root = tmp_path_factory.mktemp("fitted")
    trainer = {"max_steps": 1, "logger": False, "default_root_dir": str(root)}
    recipe = write_recipe(root / "r.yaml", tokenizer_dir, trainer=trainer)
    assert lightning_main("fit", ["-c", str(recipe)]) == 0
    (path,) = (root / "checkpoints").iterdir()
    return path, recipe


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
    checkpoint["hyper_parameters"]["export"] |= {"dir": str(hijack / "model"), "projector": str(hijack / "p.st")}
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
    assert code == 2 and str(bad) in out and DCP_REFUSALS[kind] in out, out
    assert not (tmp_path / "out").exists()
    good = write_dcp(tmp_path / "good" / "step=2.ckpt", lora)
    assert lvlm(capsys, command, "--checkpoint", good, "--out", tmp_path / "out")[0] == 0
    assert (tmp_path / "out" / "lvlm_config.json").is_file()


@pytest.mark.parametrize("kind", ["metadata", "item"])
def test_fit_resume_from_a_crafted_sharded_checkpoint_is_refused(kind, plain, tokenizer_dir, tmp_path, marker, capsys):
    """torch's own reader (which Lightning's FSDP2 resume uses) unpickles these; lvlm checks them first."""
    bad = dcp_payloads(tmp_path / "run" / "step=2.ckpt", plain, marker, kind)
    recipe = write_recipe(tmp_path / "r.yaml", tokenizer_dir, trainer={"max_steps": 1, "logger": False})
    code, out = lvlm(capsys, "fit", "-c", recipe, f"--ckpt_path={bad}", f"--trainer.default_root_dir={tmp_path}")
    assert code == 2 and str(bad) in out and DCP_REFUSALS[kind] in out, out
    assert not (tmp_path / "checkpoints").exists()  # refused before the first step


@pytest.mark.slow
def test_fit_resumes_from_a_real_sharded_checkpoint_and_refuses_its_crafted_copy(tokenizer_dir, tmp_path, marker):
    """The benign twin of the test above: the same command on a sharded checkpoint that FSDP2 wrote resumes."""
    fsdp = ["-c", str(REPO / "recipes/trainer/fsdp.yaml"), "--trainer.accelerator=cpu", "--trainer.devices=1"]
    recipe = write_recipe(tmp_path / "r.yaml", tokenizer_dir, trainer={"max_steps": 1, "logger": False})
    fit = [sys.executable, "-m", "lvlm", "fit", "-c", str(recipe), *fsdp]
    run([*fit, f"--trainer.default_root_dir={tmp_path / 'first'}"])
    (good,) = (tmp_path / "first" / "checkpoints").iterdir()
    bad = shutil.copytree(good, tmp_path / "bad" / good.name)
    (bad / METADATA_FILE).write_bytes(pickle.dumps(Payload(marker)))
    refused = subprocess.run(
        [*fit, f"--ckpt_path={bad}", f"--trainer.default_root_dir={tmp_path / 'refused'}"],
        cwd=REPO, env=env(), capture_output=True, text=True, timeout=240,
    )  # fmt: skip
    assert refused.returncode == 2 and str(bad) in refused.stderr, refused.stdout + refused.stderr
    assert DCP_REFUSALS["metadata"] in refused.stderr and "Traceback" not in refused.stderr
    resumed = tmp_path / "resumed"
    run([*fit, f"--ckpt_path={good}", "--trainer.max_steps=2", f"--trainer.default_root_dir={resumed}"])
    assert [p.name for p in (resumed / "checkpoints").iterdir()] == ["epoch=0-step=2.ckpt"]


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
    message = {"truncated": "not a readable", "not_metadata": "not distributed-checkpoint Metadata"}
    assert code == 2 and str(metadata) in out and message.get(damage, "written by torch's file writer") in out, out
    assert not (tmp_path / "out").exists()
    good = write_dcp(tmp_path / "good" / "step=2.ckpt", lora)  # the same command on the undamaged folder
    assert lvlm(capsys, "convert", "--checkpoint", good, "--out", tmp_path / "out")[0] == 0


def test_fit_resume_from_a_ckpt_with_pickled_code_is_refused(fitted, tmp_path, marker, capsys):
    """A real run's ``.ckpt`` with a payload added: exit 2 naming the file; the real one resumes."""
    good, recipe = fitted
    checkpoint = torch.load(good, weights_only=True)
    checkpoint["optimizer_states"].append(Payload(marker))
    bad = tmp_path / "bad.ckpt"
    torch.save(checkpoint, bad)

    def fit(ckpt_path, root):
        args = [f"--ckpt_path={ckpt_path}", "--trainer.max_steps=2", f"--trainer.default_root_dir={root}"]
        return lvlm(capsys, "fit", "-c", recipe, *args)

    code, out = fit(bad, tmp_path / "refused")
    assert code == 2 and f"{bad}: refused to load it" in out and "would run code" in out, out
    assert "Traceback" not in out and not (tmp_path / "refused" / "checkpoints").exists()
    code, out = fit(good, tmp_path / "resumed")
    assert code == 0, out
    assert [p.name for p in (tmp_path / "resumed" / "checkpoints").iterdir()] == ["epoch=0-step=2.ckpt"]
