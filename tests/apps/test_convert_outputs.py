"""`lvlm convert` and `lvlm merge-lora` never write over their inputs and never leave an older output's files.

The commands run as the console script does (exit 2 and a one-line message for a refused output).
"""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file

from lvlm import VideoLLaVA
from tests.apps.cli_runner import lvlm
from tests.inference.tiny_checkpoint import save_tiny_checkpoint
from tests.models.original_fixtures import write_languagebind_dir, write_original_dir
from tests.security.payloads import LORA, run_checkpoint, run_module
from tests.training.tiny import write_tokenizer


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    return save_tiny_checkpoint(tmp_path_factory.mktemp("model") / "model")


def files_of(folder):
    return {path.name: path.read_bytes() for path in folder.iterdir()}


@pytest.mark.parametrize("where", ["same", "inside", "parent"])
def test_convert_refuses_an_output_that_is_inside_or_holds_its_input(saved, tmp_path, capsys, where):
    model = tmp_path / "parent" / "model"
    model.parent.mkdir()
    model.mkdir()
    for name, data in files_of(saved).items():
        (model / name).write_bytes(data)
    before = files_of(model)
    out = {"same": model, "inside": model / "hf", "parent": model.parent}[where]
    code, message = lvlm(capsys, "convert", "--model", model, "--to", "hf", "--out", out, "--overwrite")
    assert code == 2 and "--out" in message and "input" in message, message
    assert files_of(model) == before  # untouched, still loadable
    VideoLLaVA.from_pretrained(model)


def test_convert_refuses_a_non_empty_output_unless_overwrite_and_leaves_no_stale_file(saved, tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    # A folder used before: a sharded model whose index would win over a new single-file model.
    (out / "model.safetensors.index.json").write_text('{"weight_map": {"x": "model-00001-of-00002.safetensors"}}')
    (out / "model-00001-of-00002.safetensors").write_bytes(b"old")
    code, message = lvlm(capsys, "convert", "--model", saved, "--to", "hf", "--out", out)
    assert code == 2 and "not empty" in message and "--overwrite" in message
    assert sorted(p.name for p in out.iterdir()) == ["model-00001-of-00002.safetensors", "model.safetensors.index.json"]
    assert lvlm(capsys, "convert", "--model", saved, "--to", "hf", "--out", out, "--overwrite")[0] == 0
    assert "model.safetensors.index.json" not in {p.name for p in out.iterdir()}
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out.")]  # no staging folder left behind
    expected = load_file(saved / "model.safetensors")["projector.0.weight"]
    assert torch.equal(VideoLLaVA.from_pretrained(out).state_dict()["projector.0.weight"], expected)


def test_convert_refuses_to_write_over_a_file_its_run_read(tmp_path, capsys):
    """A run's tokenizer (named in its hyper-parameters) is an input too."""
    tokenizer = write_tokenizer(tmp_path / "tokenizer")
    torch.save(run_checkpoint(run_module(tokenizer)), tmp_path / "run.ckpt")
    before = files_of(tokenizer)
    args = ["convert", "--checkpoint", tmp_path / "run.ckpt", "--out", tokenizer, "--overwrite"]
    code, message = lvlm(capsys, *args)
    assert code == 2 and str(tokenizer) in message
    assert files_of(tokenizer) == before


def test_merge_lora_refuses_its_own_checkpoint_folder_and_used_outputs(tmp_path, capsys):
    tokenizer = write_tokenizer(tmp_path / "tokenizer")
    run = tmp_path / "run"
    run.mkdir()
    torch.save(run_checkpoint(run_module(tokenizer, optimisation={"lora": LORA})), run / "last.ckpt")
    assert lvlm(capsys, "merge-lora", "--checkpoint", run / "last.ckpt", "--out", run)[0] == 2
    assert [p.name for p in run.iterdir()] == ["last.ckpt"]
    out = tmp_path / "merged"
    out.mkdir()
    (out / "stale.safetensors").write_bytes(b"old")
    code, message = lvlm(capsys, "merge-lora", "--checkpoint", run / "last.ckpt", "--out", out)
    assert code == 2 and "--overwrite" in message
    assert lvlm(capsys, "merge-lora", "--checkpoint", run / "last.ckpt", "--out", out, "--overwrite")[0] == 0
    assert "stale.safetensors" not in {p.name for p in out.iterdir()}
    assert (out / "lvlm_config.json").is_file()


def test_convert_refuses_to_write_over_a_tower_folder_the_model_names(tmp_path, capsys):
    """The original layout names its towers' folders in config.json: they are inputs of the conversion."""
    image, video = tmp_path / "LanguageBind_Image", tmp_path / "LanguageBind_Video_merge"
    write_languagebind_dir(image, "image", seed=1)
    write_languagebind_dir(video, "video", seed=2)
    write_original_dir(tmp_path / "Video-LLaVA-7B", image, video)
    code, message = lvlm(capsys, "convert", "--model", tmp_path / "Video-LLaVA-7B", "--out", video, "--overwrite")
    assert code == 2 and str(video) in message
    assert (video / "pytorch_model.bin").is_file()
