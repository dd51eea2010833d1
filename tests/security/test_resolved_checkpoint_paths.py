"""``lvlm fit`` checks the checkpoint Lightning actually loads, however it was named: ``--ckpt_path last``,
``--ckpt_path hpc`` and a SLURM requeue with no ``--ckpt_path`` at all resolve to a file or a sharded folder that
goes through the same checks as an explicit path (refused with exit 2 naming it; the payload never runs). The
benign twin of each resumes."""

from __future__ import annotations

import shutil

import pytest
import torch

from tests.apps.cli_runner import lvlm
from tests.security.payloads import Payload, run_module, write_dcp
from tests.training.tiny import write_recipe

SLURM = {"SLURM_NTASKS": "1", "SLURM_JOB_NAME": "lvlm", "SLURM_JOB_ID": "7", "SLURM_PROCID": "0",
         "SLURM_LOCALID": "0", "SLURM_NODEID": "0", "SLURM_NODELIST": "127.0.0.1", "SLURM_NNODES": "1"}  # fmt: skip


@pytest.fixture(scope="module")
def trained(tmp_path_factory, tokenizer_dir):
    """A one-step run that wrote ``checkpoints/last.ckpt`` (a real Lightning checkpoint) and its recipe."""
    root = tmp_path_factory.mktemp("run")
    checkpoints = {"class_path": "lightning.pytorch.callbacks.ModelCheckpoint",
                   "init_args": {"dirpath": str(root / "checkpoints"), "save_last": True}}  # fmt: skip
    trainer = {"max_steps": 1, "logger": False, "default_root_dir": str(root), "callbacks": [checkpoints]}
    recipe = write_recipe(root / "r.yaml", tokenizer_dir, trainer=trainer)
    from lvlm.apps.recipe_runner import lightning_main

    assert lightning_main("fit", ["-c", str(recipe)]) == 0
    return root, recipe


def _copy_run(trained, tmp_path):
    root, recipe = trained
    shutil.copytree(root / "checkpoints", tmp_path / "checkpoints")
    text = recipe.read_text().replace(str(root), str(tmp_path))
    (tmp_path / "r.yaml").write_text(text)
    return tmp_path / "r.yaml", tmp_path / "checkpoints" / "last.ckpt"


def _poison(path, marker) -> None:
    checkpoint = torch.load(path, weights_only=True)
    checkpoint["extra"] = Payload(marker)
    torch.save(checkpoint, path)


def _fit(capsys, recipe, *args):
    return lvlm(capsys, "fit", "-c", recipe, "--trainer.max_steps", "2", *args)


def test_ckpt_path_last_resolving_to_a_pickle_with_code_is_refused(trained, tmp_path, marker, capsys):
    recipe, last = _copy_run(trained, tmp_path)
    code, out = _fit(capsys, recipe, "--ckpt_path", "last")
    assert code == 0 and f"resuming from {last}" in out, out  # the benign twin
    _poison(last, marker)
    code, out = _fit(capsys, recipe, "--ckpt_path", "last")
    assert code == 2 and f"{last}: refused to load it" in out and "Traceback" not in out, out


def test_ckpt_path_last_resolving_to_a_crafted_sharded_folder_is_refused(
    trained, tokenizer_dir, tmp_path, marker, capsys
):
    recipe, last = _copy_run(trained, tmp_path)
    last.unlink()
    write_dcp(last, run_module(tokenizer_dir), extra=Payload(marker))  # a sharded `last.ckpt` holding a payload
    code, out = _fit(capsys, recipe, "--ckpt_path", "last")
    assert code == 2 and str(last) in out and "refused" in out and "Traceback" not in out, out


@pytest.mark.parametrize("how", ["hpc", "slurm_requeue"])
def test_hpc_checkpoints_are_checked_like_an_explicit_path(how, trained, tmp_path, marker, capsys, monkeypatch):
    """``--ckpt_path hpc``, and SLURM's requeue (no ``--ckpt_path``), load ``default_root_dir/hpc_ckpt_<n>.ckpt``."""
    recipe, last = _copy_run(trained, tmp_path)
    hpc = tmp_path / "hpc_ckpt_1.ckpt"
    shutil.copy(last, hpc)
    args = ["--trainer.default_root_dir", str(tmp_path)] + (["--ckpt_path", "hpc"] if how == "hpc" else [])
    if how == "slurm_requeue":
        for key, value in SLURM.items():
            monkeypatch.setenv(key, value)
    code, out = _fit(capsys, recipe, *args)
    assert code == 0 and f"resuming from {hpc}" in out, out  # the benign twin
    _poison(hpc, marker)
    code, out = _fit(capsys, recipe, *args)
    assert code == 2 and f"{hpc}: refused to load it" in out and "Traceback" not in out, out
