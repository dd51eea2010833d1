"""Offline behaviour and assembling a model around a plain LLM directory."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoModelForCausalLM

from lvlm import VideoLLaVA
from lvlm.models.checkpoints.hub import CheckpointNotFoundError
from lvlm.models.language_model import LanguageModel
from tests.models.original_fixtures import FRAMES, write_languagebind_dir
from tests.models.tiny import pixels, text_dict


def test_hub_id_not_on_disk_says_how_to_use_a_local_directory(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(CheckpointNotFoundError) as error:
        VideoLLaVA.from_pretrained("LanguageBind/Video-LLaVA-7B-lvlm-test-absent")
    message = str(error.value)
    assert "LanguageBind/Video-LLaVA-7B-lvlm-test-absent" in message and "--local-dir" in message


def test_plain_llm_directory_with_languagebind_towers(tmp_path):
    torch.manual_seed(0)
    llm = LanguageModel(config=text_dict())
    llm.causal_lm.save_pretrained(tmp_path / "vicuna")
    write_languagebind_dir(tmp_path / "img", "image", seed=1)
    write_languagebind_dir(tmp_path / "vid", "video", seed=2)
    model = VideoLLaVA.from_pretrained(tmp_path / "vicuna", image_tower=tmp_path / "img", video_tower=tmp_path / "vid")
    reference = AutoModelForCausalLM.from_pretrained(tmp_path / "vicuna")
    assert torch.equal(
        model.llm.causal_lm.model.layers[0].mlp.up_proj.weight, reference.model.layers[0].mlp.up_proj.weight
    )
    assert model.towers["video"].temporal_attention and model.projector.kind == "mlp2x_gelu"
    video_id = model.modalities["video"].token_id
    ids = torch.tensor([[1, 4] + [video_id] * (FRAMES * 5) + [6]])
    assert model(ids, videos=pixels(1, FRAMES)).logits.shape == (1, ids.shape[1], 98)
    with pytest.raises(ValueError, match="plain causal LM"):
        VideoLLaVA.from_pretrained(tmp_path / "vicuna")


def test_not_a_checkpoint(tmp_path):
    with pytest.raises(FileNotFoundError, match="not a checkpoint directory"):
        VideoLLaVA.from_pretrained(tmp_path)
