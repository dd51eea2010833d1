"""FSDP2 sharding on one CPU process (gloo): the plan's units run forward and backward without FSDP2's warning
that a sharded module returned a view (an in-place op on such a view would skip the backward all-gather)."""

from __future__ import annotations

import warnings

import pytest
import torch
import torch.distributed as dist
from torch.distributed.device_mesh import init_device_mesh

from lvlm import VideoLLaVA
from lvlm.models.language_model import LanguageModel
from lvlm.models.projector import IdentityProjector
from lvlm.models.vision.clip_tower import CLIPVisionTower, LanguageBindVideoTower
from lvlm.training.sharding import shard_model
from tests.models.tiny import FRAMES, pixels, text_dict, vision_dict

VIEW_WARNING = "returned a view tensor"


@pytest.fixture
def one_process_group():
    dist.init_process_group("gloo", store=dist.HashStore(), rank=0, world_size=1)
    yield init_device_mesh("cpu", (1,))
    dist.destroy_process_group()


def tiny_model(projector=None, width: int = 32) -> VideoLLaVA:
    torch.manual_seed(0)
    towers = {
        "image": CLIPVisionTower(vision_dict(hidden_size=width), frozen=False),
        "video": LanguageBindVideoTower(vision_dict(hidden_size=width), num_frames=FRAMES, frozen=False),
    }
    kwargs = {} if projector is None else {"projector": projector}
    return VideoLLaVA.build(LanguageModel(config=text_dict()), towers, **kwargs)


def view_warnings_of_a_training_step(model: VideoLLaVA, mesh) -> list[str]:
    """Two steps under FSDP2: one with both modalities, one with images only (the video tower runs idle)."""
    model.encode_every_modality = True
    shard_model(model, mesh)
    image, video = model.modalities["image"].token_id, model.modalities["video"].token_id
    rows = [[1, 4] + [image] * 4 + [5] + [0] * 11, [1, 4] + [video] * 5 * FRAMES + [5]]
    ids = torch.tensor(rows)
    mask = (torch.arange(ids.shape[1]) < torch.tensor([7, 18])[:, None]).long()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model(ids, attention_mask=mask, labels=ids, images=pixels(1), videos=pixels(1, FRAMES)).loss.backward()
        model(ids[:1, :7], labels=ids[:1, :7], images=pixels(1)).loss.backward()
    return [str(w.message) for w in caught if VIEW_WARNING in str(w.message)]


def test_no_sharded_unit_returns_a_view_in_a_training_step(one_process_group):
    """Every unit trains here (towers unfrozen), each modality batched and idle: no warning from any unit."""
    assert view_warnings_of_a_training_step(tiny_model(), one_process_group) == []


def test_a_projector_that_returns_its_input_view_does_not_warn_either(one_process_group):
    model = tiny_model(projector=IdentityProjector(48, 48), width=48)
    assert view_warnings_of_a_training_step(model, one_process_group) == []


def test_a_linear_projector_gets_flat_features_so_its_output_is_no_view_to_copy():
    model, outputs = tiny_model(), []
    model.projector.register_forward_hook(lambda module, args, output: outputs.append(output))
    features = model.encode("video", pixels(2, FRAMES))
    assert features.shape == (2, 5 * FRAMES, 48) and outputs[0].shape == (2 * 5 * FRAMES, 48)
    assert outputs[0]._base is None  # nothing for the sharding guard to copy


def test_a_padded_batch_without_its_padding_gives_the_unsharded_loss_and_no_view(one_process_group):
    """The training step's forward (``loss_only``, ``drop_padding``: one packed row of the real tokens) under FSDP2."""
    model = tiny_model()
    model.encode_every_modality = True
    image, video = model.modalities["image"].token_id, model.modalities["video"].token_id
    ids = torch.tensor([[1, 4] + [image] * 4 + [5] + [0] * 11, [1, 4] + [video] * 5 * FRAMES + [5]])
    mask = (torch.arange(ids.shape[1]) < torch.tensor([7, 18])[:, None]).long()
    inputs = {"attention_mask": mask, "labels": torch.where(mask.bool(), ids, -100), "use_cache": False}
    inputs |= {"images": pixels(1), "videos": pixels(1, FRAMES), "loss_only": True}
    expected = model(ids, **inputs).loss.item()  # unsharded, padded
    shard_model(model, one_process_group)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = model(ids, drop_padding=True, **inputs)
        out.loss.backward()
    assert out.logits.shape[:2] == (1, 4)  # one row per supervised token: the padding was dropped
    assert abs(out.loss.item() - expected) <= 1e-6
    assert [w for w in caught if VIEW_WARNING in str(w.message)] == []
