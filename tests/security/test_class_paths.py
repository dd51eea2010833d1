"""Every path that reads a class path from a file refuses payloads before importing anything, and works on the
same file when it is benign: a saved model (from_pretrained, chat/predict/eval/convert), a run checkpoint's
hyper-parameters (convert, merge-lora, fit --ckpt_path) and a run's saved config.yaml (--config)."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
import yaml

from lvlm import VideoLLaVA
from lvlm.apps.cli import run_command
from lvlm.apps.recipe_runner import lightning_main
from lvlm.core.errors import UnsafeInputError
from tests.inference.tiny_checkpoint import save_tiny_checkpoint

POPEN = "subprocess.Popen"


def popen(marker) -> dict:
    """A payload that would create ``marker`` if lvlm imported and called the class path it names."""
    return {"class_path": POPEN, "init_args": {"args": ["touch", str(marker)]}}


def crafted_checkpoint(source, target, marker):
    checkpoint = torch.load(source, weights_only=True)
    towers = checkpoint["hyper_parameters"]["parts"]["modalities"]["image"]["init_args"]
    towers["tower"] = popen(marker)
    checkpoint["hyper_parameters"]["_instantiator"] = "os.system"
    torch.save(checkpoint, target)
    return target


@pytest.mark.parametrize("command", ["convert", "merge-lora"])
def test_run_checkpoint_hyperparameters(command, run_checkpoint, tmp_path):
    path, _ = run_checkpoint
    marker = tmp_path / "marker"
    crafted = crafted_checkpoint(path, tmp_path / "crafted.ckpt", marker)
    args = ["--checkpoint", str(crafted), "--out", str(tmp_path / "out")]
    where = r"crafted.ckpt: hyper_parameters.parts.modalities.image.init_args.tower"
    with pytest.raises(UnsafeInputError, match=where):
        run_command(command, args)
    assert not marker.exists()
    assert run_command(command, ["--checkpoint", str(path), "--out", str(tmp_path / "benign")]) == 0
    assert VideoLLaVA.from_pretrained(tmp_path / "benign").modalities["image"].token == "<image>"


def test_saved_run_config(run_checkpoint, tmp_path):
    path, recipe = run_checkpoint
    marker = tmp_path / "marker"
    config = yaml.safe_load(recipe.read_text())
    config["model"]["parts"]["modalities"]["video"]["init_args"]["tower"] = popen(marker)
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    args = ["--checkpoint", str(path), "--run-config", str(tmp_path / "config.yaml"), "--out", str(tmp_path / "out")]
    with pytest.raises(UnsafeInputError, match=r"config.yaml: model.parts.modalities.video.init_args.tower.class_path"):
        run_command("convert", args)
    assert not marker.exists()
    benign = ["--checkpoint", str(path), "--run-config", str(recipe), "--out", str(tmp_path / "benign")]
    assert run_command("convert", benign) == 0
    assert VideoLLaVA.from_pretrained(tmp_path / "benign").modalities["video"].token == "<video>"


def test_fit_resume_never_imports_or_applies_the_checkpoint_settings(run_checkpoint, tmp_path, capsys):
    path, recipe = run_checkpoint
    marker = tmp_path / "marker"
    crafted = crafted_checkpoint(path, tmp_path / "crafted.ckpt", marker)
    export = tmp_path / "new-export"
    args = ["-c", str(recipe), "--ckpt_path", str(crafted), "--trainer.max_steps", "2"]
    # its own run folder: resuming in the shared run's would replace that run's checkpoint (save_top_k=1)
    args += ["--trainer.default_root_dir", str(tmp_path / "resumed")]
    lightning_main("fit", [*args, "--model.export.dir", str(export)])
    assert not marker.exists()
    assert (export / "lvlm_config.json").is_file()  # the command line's export.dir, not the checkpoint's
    err = capsys.readouterr().err
    assert "the recipe and command line win" in err and "model.export.dir: checkpoint None -> now" in err
    assert f"model.parts.modalities.image.init_args.tower.class_path: checkpoint '{POPEN}'" in err


def test_saved_model_config(tmp_path):
    model_dir = save_tiny_checkpoint(tmp_path / "model")
    assert VideoLLaVA.from_pretrained(model_dir).towers["image"] is not None
    marker = tmp_path / "marker"
    for field in ("towers.video", "projector", "llm"):
        crafted = tmp_path / f"crafted-{field}"
        shutil.copytree(model_dir, crafted)
        config = json.loads((crafted / "lvlm_config.json").read_text())
        section, *name = field.split(".")
        target = config[section][name[0]] if name else config[section]
        target.update(popen(marker))
        (crafted / "lvlm_config.json").write_text(json.dumps(config))
        with pytest.raises(UnsafeInputError, match=rf"lvlm_config.json: {field}.class_path: refused"):
            VideoLLaVA.from_pretrained(crafted)
        assert not marker.exists()
