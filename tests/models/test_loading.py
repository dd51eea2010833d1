"""Offline behaviour and assembling a model around a plain LLM directory."""

from __future__ import annotations

import warnings

import pytest
import torch
from transformers import AutoModelForCausalLM

from lvlm import VideoLLaVA
from lvlm.models.io.hub import CheckpointNotFoundError
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
    assert model.towers["video"].temporal_attention and model.projector.depth == 2
    video_id = model.modalities["video"].token_id
    ids = torch.tensor([[1, 4] + [video_id] * (FRAMES * 5) + [6]])
    assert model(ids, videos=pixels(1, FRAMES)).logits.shape == (1, ids.shape[1], 98)
    with pytest.raises(ValueError, match="plain causal LM"):
        VideoLLaVA.from_pretrained(tmp_path / "vicuna")


def test_not_a_checkpoint(tmp_path):
    with pytest.raises(FileNotFoundError, match="not a checkpoint directory"):
        VideoLLaVA.from_pretrained(tmp_path)


def _tiny_lvlm(tied: bool) -> VideoLLaVA:
    torch.manual_seed(0)
    from lvlm.models.vision.clip_tower import CLIPVisionTower
    from tests.models.tiny import vision_dict

    towers = {"image": CLIPVisionTower(vision_dict(), -2, "patch"), "video": CLIPVisionTower(vision_dict(), -2)}
    return VideoLLaVA.build(LanguageModel(config=text_dict(tie_word_embeddings=tied)), towers)


def _weights(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def test_tied_embeddings_stay_tied_after_loading(tmp_path):
    saved = _tiny_lvlm(tied=True)
    saved.save_pretrained(tmp_path)
    model = VideoLLaVA.from_pretrained(tmp_path)
    causal_lm = model.llm.causal_lm
    assert causal_lm.lm_head.weight is causal_lm.get_input_embeddings().weight
    with torch.no_grad():
        causal_lm.get_input_embeddings().weight[3] += 1.0  # one tensor: the output layer sees the change
    assert torch.equal(causal_lm.lm_head.weight[3], causal_lm.get_input_embeddings().weight[3])
    trainable = {name: p.requires_grad for name, p in model.named_parameters()}
    assert trainable == {name: p.requires_grad for name, p in saved.named_parameters()}  # towers frozen, rest not


def test_untied_output_layer_loads_its_own_weights(tmp_path):
    saved = _tiny_lvlm(tied=False)
    saved.save_pretrained(tmp_path)
    causal_lm = VideoLLaVA.from_pretrained(tmp_path).llm.causal_lm
    assert causal_lm.lm_head.weight is not causal_lm.get_input_embeddings().weight
    assert torch.equal(causal_lm.lm_head.weight, saved.llm.causal_lm.lm_head.weight)
    assert not torch.equal(causal_lm.lm_head.weight, causal_lm.get_input_embeddings().weight)


def test_loaded_model_can_be_saved_over_its_own_directory(tmp_path):
    # the loaded weights are memory of their own, not views of the (memory-mapped) files being overwritten
    _tiny_lvlm(tied=False).save_pretrained(tmp_path)
    model = VideoLLaVA.from_pretrained(tmp_path)
    expected = _weights(model)
    model.save_pretrained(tmp_path)
    reloaded = _weights(VideoLLaVA.from_pretrained(tmp_path))
    assert expected.keys() == reloaded.keys()
    assert all(torch.equal(expected[k], reloaded[k]) for k in expected)


def test_load_in_bfloat16_casts_every_floating_weight(tmp_path):
    saved = _tiny_lvlm(tied=False)
    saved.save_pretrained(tmp_path)
    model = VideoLLaVA.from_pretrained(tmp_path, dtype="bfloat16")
    expected = saved.state_dict()
    for key, tensor in model.state_dict().items():
        assert tensor.dtype == torch.bfloat16, key
        assert torch.equal(tensor, expected[key].to(torch.bfloat16)), key


def test_torch_dtype_is_a_deprecated_alias_of_dtype_warned_once(tmp_path, monkeypatch):
    from lvlm.models import dtype_argument

    monkeypatch.setattr(dtype_argument, "_WARNED", set())  # a fresh process: nobody told yet
    _tiny_lvlm(tied=False).save_pretrained(tmp_path)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        first = VideoLLaVA.from_pretrained(tmp_path, torch_dtype=torch.bfloat16)
        second = VideoLLaVA.from_pretrained(tmp_path, torch_dtype="bfloat16")
        by_new_name = VideoLLaVA.from_pretrained(tmp_path, dtype=torch.bfloat16)
    deprecations = [w for w in caught if issubclass(w.category, FutureWarning)]
    assert [str(w.message) for w in deprecations] == [
        "VideoLLaVA.from_pretrained: torch_dtype= is deprecated, pass dtype= (as transformers 5 does)"
    ]
    assert deprecations[0].filename == __file__  # points at the caller's line
    for model in (first, second, by_new_name):
        assert {t.dtype for t in model.state_dict().values()} == {torch.bfloat16}
    with pytest.raises(TypeError, match=r"give dtype= only"):
        VideoLLaVA.from_pretrained(tmp_path, dtype="bfloat16", torch_dtype="bfloat16")


@pytest.mark.parametrize("zip_format", [True, False], ids=["zip", "legacy"])
def test_bin_weights_in_either_torch_format(tmp_path, zip_format):
    # zip-format files are memory-mapped; files in torch's legacy format cannot be, and are read whole
    from lvlm.models.io.weights import read_state_dict

    state = {"a": torch.arange(6.0).reshape(2, 3), "b": torch.tensor([1, 2], dtype=torch.int64)}
    torch.save(state, tmp_path / "pytorch_model.bin", _use_new_zipfile_serialization=zip_format)
    loaded = read_state_dict(tmp_path)
    assert loaded.keys() == state.keys() and all(torch.equal(loaded[k], state[k]) for k in state)
