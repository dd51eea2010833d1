"""Placeholder rows (``<image>``, ``<video>``, any modality's) get no probability: not in the loss, never sampled.

The original Video-LLaVA had no such rows (a sentinel id stood for the media), so its loss is the
cross-entropy over the original vocabulary; the logits lvlm returns stay whole, as transformers' are.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from lvlm import VideoLLaVA
from lvlm.models.language_model import LanguageModel
from lvlm.models.vision.clip_tower import CLIPVisionTower
from tests.models.tiny import FRAMES, pixels, text_dict, vision_dict

VOCAB = text_dict()["vocab_size"]  # the original vocabulary; placeholders are appended after it


@pytest.fixture(scope="module")
def model() -> VideoLLaVA:
    torch.manual_seed(0)
    towers = {
        "image": CLIPVisionTower(vision_dict(), -2, "patch"),
        "video": CLIPVisionTower(vision_dict(), -2, "cls_patch"),
        "depth": CLIPVisionTower(vision_dict(), -2, "patch"),
    }
    model = VideoLLaVA.build(LanguageModel(config=text_dict(tie_word_embeddings=False)), towers).eval()
    batch = inputs(model)
    with torch.no_grad():  # make the placeholder rows likely, so a loss or a sampler that counts them shows it
        last = model(batch["input_ids"][:1], videos=batch["videos"]).logits[0, -1]
        head = model.llm.causal_lm.lm_head.weight
        top = int(last[:VOCAB].argmax())
        head[model.placeholder_ids] = head[top] * (1 + 4 / last[top].clamp(min=0.05))  # logit: top + 4
    return model


def inputs(model: VideoLLaVA) -> dict[str, torch.Tensor]:
    image, video = model.modalities["image"].token_id, model.modalities["video"].token_id
    ids = torch.tensor([[1, 5] + [video] * (5 * FRAMES) + [7, 8, 9, 10], [1, 5] + [image] * 4 + list(range(11, 26))])
    labels = ids.clone()
    labels[:, :3] = -100
    return {"input_ids": ids, "labels": labels, "images": pixels(1), "videos": pixels(1, FRAMES)}


def loss_over(logits: torch.Tensor, labels: torch.Tensor, vocabulary: int, placeholders: list[int]) -> torch.Tensor:
    """Shifted cross-entropy over the first ``vocabulary`` rows; visual positions are not targets."""
    targets = labels[:, 1:].masked_fill(torch.isin(labels[:, 1:], torch.tensor(placeholders)), -100)
    return F.cross_entropy(logits[:, :-1, :vocabulary].flatten(0, 1), targets.flatten(), ignore_index=-100)


@pytest.mark.parametrize("loss_only", [False, True])
def test_loss_equals_the_loss_over_the_original_vocabulary(model, loss_only):
    batch = inputs(model)
    with torch.no_grad():
        full = model(batch["input_ids"], images=batch["images"], videos=batch["videos"])
        out = model(**batch, loss_only=loss_only)
    assert full.logits.shape[-1] == VOCAB + 3  # the logits stay whole: placeholder columns included
    expected = loss_over(full.logits, batch["labels"], VOCAB, model.placeholder_ids)
    assert abs(out.loss.item() - expected.item()) <= 1e-5


def test_full_vocabulary_loss_is_transformers_loss(model):
    batch = inputs(model)
    with torch.no_grad():
        logits = model(batch["input_ids"], images=batch["images"], videos=batch["videos"]).logits
        ours = model(**batch, full_vocabulary_loss=True).loss
        kept = model(**batch, full_vocabulary_loss=True, loss_only=True).loss
        default = model(**batch).loss
    expected = loss_over(logits, batch["labels"], VOCAB + 3, model.placeholder_ids)
    assert abs(ours.item() - expected.item()) <= 1e-5 and abs(kept.item() - expected.item()) <= 1e-5
    assert ours.item() - default.item() > 1e-2  # the placeholder rows took probability mass: the losses differ


def test_sampling_never_picks_a_placeholder(model):
    batch = inputs(model)
    ids = batch["input_ids"][:1]
    with torch.no_grad():
        last = model(ids, videos=batch["videos"]).logits[0, -1].softmax(-1)
    assert last[model.placeholder_ids].sum() > 0.5  # unsuppressed, most draws would be a placeholder
    drawn = set()
    for seed in range(20):
        torch.manual_seed(seed)
        new = model.generate(ids, videos=batch["videos"], max_new_tokens=4, do_sample=True, temperature=1.5)
        drawn |= set(new.flatten().tolist())
    assert drawn and not drawn & set(model.placeholder_ids)
    torch.manual_seed(0)  # also when the caller suppresses other tokens of its own
    new = model.generate(ids, videos=batch["videos"], max_new_tokens=4, do_sample=True, suppress_tokens=[7])
    assert not set(new.flatten().tolist()) & {7, *model.placeholder_ids}
