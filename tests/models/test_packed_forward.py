"""The packed layout (one row, position ids restarting per sample, no attention mask) gives the padded batch's
loss and gradients: attention never crosses samples (lvlm's per-sample sdpa, transformers' sdpa and eager), with
and without `loss_only`, with LoRA; a packed forward never builds a KV cache."""

from __future__ import annotations

import pytest
import torch

from lvlm import VideoLLaVA
from lvlm.models.language_model import LanguageModel
from lvlm.models.packed_attention import PACKED_SDPA
from lvlm.models.vision.clip_tower import CLIPVisionTower
from lvlm.training.lora import LoRASettings, add_lora
from tests.models.test_supervised_loss import batch
from tests.models.tiny import text_dict, vision_dict


def build(attn: str, lora: bool) -> VideoLLaVA:
    torch.manual_seed(0)
    towers = {
        "image": CLIPVisionTower(vision_dict(), -2, "patch"),
        "video": CLIPVisionTower(vision_dict(), -2, "cls_patch"),
    }
    model = VideoLLaVA.build(LanguageModel(config=text_dict(), attn_implementation=attn), towers)
    if lora:
        add_lora(model.llm.causal_lm, LoRASettings(r=4, alpha=8, dropout=0.0, target_modules=["q_proj", "v_proj"]))
        for name, param in model.named_parameters():  # LoRA B starts at zero: perturb it so its gradient flows
            if "lora_B" in name:
                torch.nn.init.normal_(param, std=0.02)
    return model


def packed(padded: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The padded rows concatenated without their pads, as `lvlm.data.packing.PackingCollator` lays them out."""
    lengths = padded["attention_mask"].sum(1).tolist()
    rows = range(len(lengths))
    return {
        "input_ids": torch.cat([padded["input_ids"][i, : lengths[i]] for i in rows])[None],
        "labels": torch.cat([padded["labels"][i, : lengths[i]] for i in rows])[None],
        "position_ids": torch.cat([torch.arange(n) for n in lengths])[None],
        "images": padded["images"],
        "videos": padded["videos"],
    }


def loss_and_grads(model: VideoLLaVA, inputs: dict, loss_only: bool) -> tuple[float, dict[str, torch.Tensor]]:
    model.zero_grad()
    loss = model(**inputs, use_cache=False, loss_only=loss_only).loss
    loss.backward()
    return loss.item(), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


@pytest.mark.parametrize(
    ("attn", "loss_only", "lora"),
    [
        ("sdpa", True, False),
        ("eager", False, False),
        ("sdpa", True, True),
        (PACKED_SDPA, True, False),
        (PACKED_SDPA, False, False),
        (PACKED_SDPA, True, True),
    ],
)
def test_packed_batch_gives_the_padded_loss_and_gradients(attn, loss_only, lora):
    model = build(attn, lora)
    padded = batch(model)
    assert padded["labels"][:, 0].eq(-100).all()  # a sample's first token is never a target
    expected_loss, expected = loss_and_grads(model, padded, loss_only)
    got_loss, got = loss_and_grads(model, packed(padded), loss_only)
    assert abs(got_loss - expected_loss) <= 1e-5
    assert got.keys() == expected.keys() and "projector.0.weight" in got
    assert any("lora_" in name for name in got) == lora
    for name in expected:
        torch.testing.assert_close(got[name], expected[name], rtol=0, atol=1e-5, msg=name)


@pytest.mark.parametrize("attn", ["sdpa", PACKED_SDPA])
def test_without_position_resets_the_samples_would_attend_to_each_other(attn):
    model = build(attn, lora=False)
    padded = batch(model)
    inputs = packed(padded)
    crossing = inputs | {"position_ids": torch.arange(inputs["input_ids"].shape[1])[None]}
    with torch.no_grad():
        apart = model(**inputs, use_cache=False, loss_only=True).loss.item()
        together = model(**crossing, use_cache=False, loss_only=True).loss.item()
        reference = model(**padded, use_cache=False, loss_only=True).loss.item()
    assert abs(apart - reference) <= 1e-5 and abs(together - reference) > 1e-3


def alone(model: VideoLLaVA, padded: dict[str, torch.Tensor]) -> torch.Tensor:
    """Each sample's logits when it runs by itself (a batch of one, no padding), concatenated: ``[l, v]``."""
    names = {model.modalities["image"].token_id: "images", model.modalities["video"].token_id: "videos"}
    media = {"images": iter(padded["images"]), "videos": iter(padded["videos"])}
    logits = []
    for row, length in zip(padded["input_ids"], padded["attention_mask"].sum(1).tolist()):
        ids = row[None, :length]
        own = {name: next(media[name])[None] for token, name in names.items() if bool((ids == token).any())}
        logits.append(model(input_ids=ids, **own, use_cache=False).logits[0])
    return torch.cat(logits)


@pytest.mark.parametrize("attn", ["sdpa", "eager", PACKED_SDPA])
def test_a_packed_forward_builds_no_cache_so_samples_stay_apart(attn):
    model = build(attn, lora=False).eval()
    padded = batch(model)
    inputs = {k: v for k, v in packed(padded).items() if k != "labels"}
    with torch.no_grad():
        expected = alone(model, padded)
        output = model(**inputs)  # use_cache left to the config (True): the guard turns it off
        embeds = model.embed_inputs(inputs["input_ids"], {"images": inputs["images"], "videos": inputs["videos"]})
        unguarded = model.llm(inputs_embeds=embeds, position_ids=inputs["position_ids"])  # builds a cache
    assert output.cache is None and unguarded.cache is not None
    torch.testing.assert_close(output.logits[0], expected, rtol=0, atol=1e-5)
    if attn != PACKED_SDPA:  # with a cache, transformers reads no samples; lvlm's attention reads them anyway
        assert (unguarded.logits[0] - expected).abs().max() > 1e-3


def test_a_packed_batch_refuses_a_cache_and_a_padded_one_keeps_it():
    model = build(PACKED_SDPA, lora=False).eval()
    padded = batch(model)
    inputs = {k: v for k, v in packed(padded).items() if k != "labels"}
    with torch.no_grad(), pytest.raises(ValueError, match="packed batch .* cannot use a KV cache"):
        model(**inputs, use_cache=True)
    with torch.no_grad():
        assert model(**{k: v for k, v in padded.items() if k != "labels"}, use_cache=True).cache is not None
