"""Tokenizers and configs that name code in their folder (``auto_map``) never run it, and nothing asks on stdin.

transformers, left to itself, asks "Do you wish to run the custom code? [y/N]" on stdin; ``lvlm chat`` reads
the user's questions from stdin, so a ``y`` typed there would have run the folder's code.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM

from lvlm import VideoLLaVA
from lvlm.core.errors import UnsafeInputError
from lvlm.models.language_model import LanguageModel
from tests.apps.cli_runner import lvlm
from tests.inference.tiny_checkpoint import save_tiny_checkpoint
from tests.models.tiny import text_dict
from tests.security.payloads import write_remote_code
from tests.training.tiny import instantiate_module, tiny_model_args, tiny_tokenizer, write_tokenizer

LVLM = str(Path(sys.executable).with_name("lvlm"))


def add_tokenizer_auto_map(folder: Path, marker: Path, own_class: bool) -> None:
    """Point ``AutoTokenizer`` at ``evil.EvilTokenizer`` in ``folder``; ``own_class`` also names it as the class
    (so only its code could load the tokenizer), otherwise a class transformers provides stays named."""
    write_remote_code(folder, marker)
    with open(folder / "evil.py", "a") as file:
        file.write("from transformers import PreTrainedTokenizerFast\nclass EvilTokenizer(PreTrainedTokenizerFast):\n"
                   "    pass\n")  # fmt: skip
    config = json.loads((folder / "tokenizer_config.json").read_text())
    config["auto_map"] = {"AutoTokenizer": [None, "evil.EvilTokenizer"]}
    if own_class:
        config["tokenizer_class"] = "EvilTokenizer"
    (folder / "tokenizer_config.json").write_text(json.dumps(config))


def chat(model: Path, answers: str) -> subprocess.CompletedProcess:
    """``lvlm chat --model MODEL`` with ``answers`` on stdin (as a user typing)."""
    args = [LVLM, "chat", "--model", str(model), "--temperature", "0", "--max-new-tokens", "3"]
    return subprocess.run(args, input=answers, text=True, capture_output=True, timeout=120)


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    return save_tiny_checkpoint(tmp_path_factory.mktemp("model") / "model")


def copy_of(saved: Path, folder: Path) -> Path:
    folder.mkdir()
    for file in saved.iterdir():
        (folder / file.name).write_bytes(file.read_bytes())
    return folder


def test_lvlm_chat_never_answers_a_remote_code_prompt_from_its_input(saved, tmp_path, marker):
    bad = copy_of(saved, tmp_path / "bad")
    add_tokenizer_auto_map(bad, marker, own_class=True)
    result = chat(bad, "y\ny\nwhat colour is the shape\n")
    assert result.returncode == 2, result.stdout + result.stderr
    assert "needs code from its folder" in result.stderr and str(bad) in result.stderr
    assert "Do you wish to run the custom code" not in result.stdout + result.stderr
    result = chat(copy_of(saved, tmp_path / "good"), "what colour is the shape\n")
    assert result.returncode == 0 and "ASSISTANT" in result.stdout + result.stderr, result.stderr


def test_a_tokenizer_naming_a_provided_class_loads_without_its_code(saved, tmp_path, marker, capsys):
    folder = copy_of(saved, tmp_path / "model")
    add_tokenizer_auto_map(folder, marker, own_class=False)
    assert lvlm(capsys, "convert", "--model", folder, "--out", tmp_path / "out")[0] == 0
    assert (tmp_path / "out" / "tokenizer_config.json").is_file()


def test_a_recipes_tokenizer_with_remote_code_is_refused(tmp_path, marker):
    """``lvlm fit`` builds the module from the recipe: its tokenizer folder is read without code too."""
    tokenizer = write_tokenizer(tmp_path / "tokenizer")
    add_tokenizer_auto_map(tokenizer, marker, own_class=True)
    with pytest.raises(UnsafeInputError, match=rf"{re.escape(str(tokenizer))}.*needs code from its folder"):
        instantiate_module(tiny_model_args(tokenizer))
    clean = write_tokenizer(tmp_path / "clean")
    words = "what colour is the shape"
    assert instantiate_module(tiny_model_args(clean)).tokenizer(words).input_ids == tiny_tokenizer()(words).input_ids


def test_configs_with_auto_map_load_the_provided_class_only(saved, tmp_path, marker):
    """lvlm_config.json (the LLM's config) and a plain LLM's config.json naming code in their folder."""
    folder = copy_of(saved, tmp_path / "model")
    write_remote_code(folder, marker)
    config = json.loads((folder / "lvlm_config.json").read_text())
    config["llm"]["init_args"]["config"]["auto_map"] = {"AutoConfig": "evil.C", "AutoModelForCausalLM": "evil.M"}
    (folder / "lvlm_config.json").write_text(json.dumps(config))
    loaded = VideoLLaVA.from_pretrained(folder)
    expected = VideoLLaVA.from_pretrained(saved).state_dict()
    assert all(torch.equal(tensor, expected[key]) for key, tensor in loaded.state_dict().items())
    assert type(loaded.llm.causal_lm).__name__ == "LlamaForCausalLM"

    llm = tmp_path / "llm"
    LlamaForCausalLM(LlamaConfig(**{k: v for k, v in text_dict().items() if k != "model_type"})).save_pretrained(llm)
    write_remote_code(llm, marker)
    config = json.loads((llm / "config.json").read_text()) | {"auto_map": {"AutoModelForCausalLM": "evil.M"}}
    (llm / "config.json").write_text(json.dumps(config))
    assert type(LanguageModel(pretrained=str(llm)).causal_lm).__name__ == "LlamaForCausalLM"
