"""The end-of-fit export never writes over an input or the run, never replaces an older export unasked, and
leaves no file of an older export beside the new one. Refusals come before any training step."""

from __future__ import annotations

import pytest

from lvlm import VideoLLaVA
from tests.apps.cli_runner import lvlm
from tests.training.tiny import write_recipe


def fit(capsys, tmp_path, tokenizer_dir, **model) -> tuple[int, str]:
    run = tmp_path / "run"
    trainer = {"max_steps": 1, "logger": False, "default_root_dir": str(run)}
    recipe = write_recipe(tmp_path / "recipe.yaml", tokenizer_dir, trainer=trainer, **model)
    return lvlm(capsys, "fit", "-c", recipe)


def trained(tmp_path) -> bool:
    return (tmp_path / "run" / "checkpoints").exists()


@pytest.mark.parametrize("target", ["tokenizer", "run"])
def test_an_export_over_an_input_or_the_run_is_refused_before_training(target, tokenizer_dir, tmp_path, capsys):
    export_dir = {"tokenizer": tokenizer_dir, "run": tmp_path / "run"}[target]
    before = sorted(p.name for p in tokenizer_dir.iterdir())
    code, message = fit(capsys, tmp_path, tokenizer_dir, export={"dir": str(export_dir), "overwrite": True})
    assert code == 2 and "model.export.dir" in message, message
    assert not trained(tmp_path) and sorted(p.name for p in tokenizer_dir.iterdir()) == before


def test_a_used_export_folder_needs_export_overwrite_and_is_replaced_whole(tokenizer_dir, tmp_path, capsys):
    export_dir = tmp_path / "model"
    export_dir.mkdir()
    (export_dir / "model.safetensors.index.json").write_text('{"weight_map": {}}')  # an older, sharded export
    code, message = fit(capsys, tmp_path, tokenizer_dir, export={"dir": str(export_dir)})
    assert code == 2 and "not empty" in message and not trained(tmp_path)
    code, message = fit(capsys, tmp_path, tokenizer_dir, export={"dir": str(export_dir), "overwrite": True})
    assert code == 0, message
    assert not (export_dir / "model.safetensors.index.json").exists()
    assert VideoLLaVA.from_pretrained(export_dir).towers.keys() == {"image", "video"}


def test_an_existing_projector_export_needs_export_overwrite(tokenizer_dir, tmp_path, capsys):
    projector = tmp_path / "stage1" / "projector.safetensors"
    projector.parent.mkdir()
    projector.write_bytes(b"older")
    code, message = fit(capsys, tmp_path, tokenizer_dir, export={"projector": str(projector)})
    assert code == 2 and "model.export.projector" in message and projector.read_bytes() == b"older"
    assert fit(capsys, tmp_path, tokenizer_dir, export={"projector": str(projector), "overwrite": True})[0] == 0
    assert projector.read_bytes() != b"older" and [p.name for p in projector.parent.iterdir()] == [projector.name]


def test_an_export_over_the_resumed_checkpoint_is_refused_before_training(tokenizer_dir, tmp_path, capsys):
    assert fit(capsys, tmp_path, tokenizer_dir)[0] == 0
    (ckpt,) = (tmp_path / "run" / "checkpoints").glob("*.ckpt")
    before = ckpt.read_bytes()
    trainer = {"max_steps": 2, "logger": False, "default_root_dir": str(tmp_path / "again")}
    recipe = write_recipe(tmp_path / "again.yaml", tokenizer_dir, export={"dir": str(ckpt.parent)}, trainer=trainer)
    code, message = lvlm(capsys, "fit", "-c", recipe, f"--ckpt_path={ckpt}", "--model.export.overwrite=true")
    assert code == 2 and "model.export.dir" in message and str(ckpt) in message, message
    assert ckpt.read_bytes() == before and not (tmp_path / "again").exists()
