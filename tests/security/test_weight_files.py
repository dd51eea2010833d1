"""Weight files (``.bin`` pickles, safetensors indexes, projector files, LanguageBind towers with LoRA adapters)
never run code and never read outside their folder; the benign twin of each loads with the same command."""

from __future__ import annotations

import json
import os

import pytest
import torch
from safetensors.torch import load_file, save_file

from lvlm import VideoLLaVA
from lvlm.core.errors import UnsafeInputError
from tests.apps.cli_runner import lvlm
from tests.inference.tiny_checkpoint import save_tiny_checkpoint
from tests.models.original_fixtures import write_languagebind_dir
from tests.models.tiny import text_dict
from tests.security.payloads import Payload
from tests.training.tiny import write_recipe


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    return save_tiny_checkpoint(tmp_path_factory.mktemp("model") / "model")


def copy_with_bin_weights(saved, folder, extra=None):
    """The saved checkpoint with its weights as ``pytorch_model.bin`` (a pickle), plus ``extra`` entries."""
    folder.mkdir()
    for file in saved.iterdir():
        if file.name != "model.safetensors":
            (folder / file.name).write_bytes(file.read_bytes())
    torch.save(load_file(saved / "model.safetensors") | (extra or {}), folder / "pytorch_model.bin")
    return folder


def test_a_bin_weights_pickle_that_runs_code_is_refused(saved, tmp_path, marker, capsys):
    bad = copy_with_bin_weights(saved, tmp_path / "bad", {"x": Payload(marker)})
    code, out = lvlm(capsys, "convert", "--model", bad, "--out", tmp_path / "out")
    assert code == 2 and str(bad / "pytorch_model.bin") in out and "would run code" in out
    with pytest.raises(UnsafeInputError, match=r"pytorch_model.bin: refused to load it.*would run code"):
        VideoLLaVA.from_pretrained(bad)
    good = copy_with_bin_weights(saved, tmp_path / "good")
    assert lvlm(capsys, "convert", "--model", good, "--out", tmp_path / "out")[0] == 0
    expected = load_file(saved / "model.safetensors")["projector.0.weight"]
    assert torch.equal(VideoLLaVA.from_pretrained(good).state_dict()["projector.0.weight"], expected)


def indexed_copy(saved, folder, entry: str):
    """The saved checkpoint with an index whose every weight maps to ``entry``."""
    folder.mkdir()
    for file in saved.iterdir():
        if file.name != "model.safetensors":
            (folder / file.name).write_bytes(file.read_bytes())
    state = load_file(saved / "model.safetensors")
    index = {"metadata": {}, "weight_map": dict.fromkeys(state, entry)}
    (folder / "model.safetensors.index.json").write_text(json.dumps(index))
    return folder, state


@pytest.mark.parametrize("escape", ["dotdot", "absolute", "symlink"])
def test_index_entries_outside_their_folder_are_refused(escape, saved, tmp_path, capsys):
    outside = tmp_path / "outside.safetensors"  # benign weights: it is the reading outside that is refused
    save_file(load_file(saved / "model.safetensors"), str(outside))
    entry = {"dotdot": "../outside.safetensors", "absolute": str(outside), "symlink": "link.safetensors"}[escape]
    folder, _ = indexed_copy(saved, tmp_path / "bad", entry)
    if escape == "symlink":
        os.symlink(outside, folder / "link.safetensors")
    code, out = lvlm(capsys, "convert", "--model", folder, "--out", tmp_path / "out")
    assert code == 2 and "model.safetensors.index.json" in out and "outside" in out, out
    good, state = indexed_copy(saved, tmp_path / "good", "model-00001-of-00001.safetensors")
    save_file(state, str(good / "model-00001-of-00001.safetensors"))
    assert lvlm(capsys, "convert", "--model", good, "--out", tmp_path / "out")[0] == 0


def test_an_original_mm_projector_bin_that_runs_code_is_refused(tokenizer_dir, tmp_path, marker, capsys):
    """Stage 2 starts from the stage-1 projector: `lvlm fit --model.parts.projector_checkpoint mm_projector.bin`."""
    recipe = write_recipe(tmp_path / "r.yaml", tokenizer_dir, trainer={"max_steps": 1, "logger": False})
    args = ["fit", "-c", recipe, f"--trainer.default_root_dir={tmp_path / 'run'}"]
    shapes = {"0.weight": (48, 32), "0.bias": (48,), "2.weight": (48, 48), "2.bias": (48,)}
    state = {f"model.mm_projector.{k}": torch.full(shape, 0.01) for k, shape in shapes.items()}
    (tmp_path / "bad").mkdir()
    torch.save(state | {"x": Payload(marker)}, tmp_path / "bad" / "mm_projector.bin")
    code, out = lvlm(capsys, *args, f"--model.parts.projector_checkpoint={tmp_path / 'bad' / 'mm_projector.bin'}")
    assert code == 2 and "mm_projector.bin" in out and "would run code" in out, out
    torch.save(state, tmp_path / "mm_projector.bin")
    code, out = lvlm(capsys, *args, f"--model.parts.projector_checkpoint={tmp_path / 'mm_projector.bin'}")
    assert code == 0, out


def test_a_languagebind_tower_with_lora_adapters_that_runs_code_is_refused(tmp_path, marker):
    """A LanguageBind tower folder (``pytorch_model.bin`` holding LoRA adapters) around a plain LLM folder."""
    from transformers import LlamaConfig, LlamaForCausalLM

    LlamaForCausalLM(LlamaConfig(**{k: v for k, v in text_dict().items() if k != "model_type"})).save_pretrained(
        tmp_path / "llm"
    )
    image, video = tmp_path / "LanguageBind_Image", tmp_path / "LanguageBind_Video_merge"
    write_languagebind_dir(image, "image", seed=1, lora=True)
    write_languagebind_dir(video, "video", seed=2)
    weights = torch.load(image / "pytorch_model.bin", weights_only=True)
    assert any(".lora_A." in key for key in weights)
    model = VideoLLaVA.from_pretrained(tmp_path / "llm", image_tower=image, video_tower=video)  # benign: loads
    assert set(model.towers) == {"image", "video"}
    torch.save(weights | {"x": Payload(marker)}, image / "pytorch_model.bin")
    with pytest.raises(UnsafeInputError, match="pytorch_model.bin"):
        VideoLLaVA.from_pretrained(tmp_path / "llm", image_tower=image, video_tower=video)
