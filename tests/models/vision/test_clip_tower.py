"""CLIP towers: layer selection against transformers' hidden states, token counts, frozen by default."""

from __future__ import annotations

import pytest
import torch
from transformers import CLIPVisionConfig, CLIPVisionModel

from lvlm.apps.quickstart_towers import save_languagebind_tower
from lvlm.models.vision.clip_tower import CLIPVisionTower, LanguageBindImageTower, LanguageBindVideoTower
from tests.models.tiny import pixels, vision_dict


@pytest.mark.parametrize(
    ("select_layer", "feature"), [(-2, "patch"), (-1, "cls_patch"), (1, "patch"), (0, "cls_patch")]
)
def test_selected_hidden_state_equals_transformers(select_layer, feature):
    tower = CLIPVisionTower(vision_dict(), select_layer=select_layer, select_feature=feature)
    reference = CLIPVisionModel(CLIPVisionConfig(**vision_dict())).eval()
    reference.load_state_dict({k.removeprefix("vit."): v for k, v in tower.state_dict().items()})
    images = pixels(3)
    with torch.no_grad():
        hidden = reference(images, output_hidden_states=True).hidden_states[select_layer]
        ours = tower(images)
    expected = hidden if feature == "cls_patch" else hidden[:, 1:]
    assert ours.shape == expected.shape == (3, tower.tokens_per_image, 32)
    assert (ours - expected).abs().max().item() < 1e-5


def test_token_counts_follow_the_config():
    vit_l = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=1, num_attention_heads=4)
    tower = CLIPVisionTower(vit_l | {"image_size": 224, "patch_size": 14})
    assert tower.tokens_per_image == 256 and tower.preprocessing.size == 224
    video = LanguageBindVideoTower(vit_l | {"image_size": 224, "patch_size": 14}, num_frames=8)
    assert video.tokens_per_frame == 257  # CLS kept per frame: 8 x 257 = 2056 per video
    assert CLIPVisionTower(vit_l | {"image_size": 336, "patch_size": 14}).tokens_per_image == 576


def test_towers_are_frozen_and_stay_in_eval_mode():
    tower = CLIPVisionTower(vision_dict())
    assert not any(p.requires_grad for p in tower.parameters())
    tower.train()
    assert not tower.training and not tower.vit.training
    tower.unfreeze().train()
    assert tower.training and all(p.requires_grad for p in tower.parameters())


def test_hidden_act_comes_from_the_config():
    assert CLIPVisionTower(vision_dict()).vit.encoder.layers[0].mlp.config.hidden_act == "quick_gelu"
    gelu = CLIPVisionTower(vision_dict(hidden_act="gelu"))
    quick = CLIPVisionTower(vision_dict())
    quick.load_state_dict(gelu.state_dict())
    images = pixels(1)
    assert (gelu(images) - quick(images)).abs().max() > 1e-4  # the activation really differs


def test_video_tower_without_temporal_attention_is_per_frame_clip():
    plain = LanguageBindVideoTower(vision_dict(), num_frames=3, temporal_attention=False)
    per_frame = CLIPVisionTower(vision_dict(), select_feature="cls_patch")
    per_frame.load_state_dict(plain.state_dict())
    video = pixels(2, 3)
    expected = per_frame(video.flatten(0, 1)).reshape(2, 3 * 5, 32)
    assert torch.allclose(plain(video), expected, atol=1e-6)
    assert not any("temporal" in k for k in plain.state_dict())


def test_bad_select_layer_and_input_shape_are_clear():
    with pytest.raises(ValueError, match="select_layer=-9"):
        CLIPVisionTower(vision_dict(), select_layer=-9)
    with pytest.raises(ValueError, match=r"\[n, c, h, w\]"):
        CLIPVisionTower(vision_dict())(torch.zeros(3, 28, 28))


def test_fsdp2_wrapper_class_is_saved_as_the_tower_class():
    from torch.distributed.fsdp import FSDPModule

    # fully_shard swaps a module's class for type("FSDP" + name, (FSDPModule, cls), {}): do the same.
    wrapper = type("FSDPCLIPVisionTower", (FSDPModule, CLIPVisionTower), {})
    assert wrapper.component_class() is CLIPVisionTower


def test_uint8_pixels_are_normalised_by_the_tower_with_its_own_mean_and_std():
    from lvlm.data.transforms import normalize_pixels

    image_tower = CLIPVisionTower(vision_dict(), select_layer=-2)
    video_tower = LanguageBindVideoTower(vision_dict(), select_layer=-2, num_frames=3)
    generator = torch.Generator().manual_seed(0)
    size = image_tower.preprocessing.size
    for tower, shape in ((image_tower, (2, 3, size, size)), (video_tower, (2, 3, 3, size, size))):
        raw = torch.randint(0, 256, shape, dtype=torch.uint8, generator=generator)
        pre = tower.preprocessing
        normalised = normalize_pixels(raw, torch.tensor(pre.mean), torch.tensor(pre.std))
        assert normalised.dtype == torch.float32 and normalised.abs().max() > 1.0
        assert torch.equal(tower(raw), tower(normalised))
        assert not torch.equal(tower(raw), tower(raw.float()))  # floats are taken as already normalised


def test_pretrained_towers_skip_the_random_init_their_weights_replace(tmp_path):
    """A tower read from a directory draws no random numbers for weights it then overwrites: the image and the
    video tower advance the generator alike (only transformers' CLS embedding draw), so a seeded run's later
    draws (projector, LLM) do not depend on which towers it loads, and no time goes into a discarded init."""
    image_dir = save_languagebind_tower(LanguageBindImageTower(vision_dict()), tmp_path / "image")
    video_dir = save_languagebind_tower(LanguageBindVideoTower(vision_dict(), num_frames=2), tmp_path / "video")
    states = []
    for cls, directory in ((LanguageBindImageTower, image_dir), (LanguageBindVideoTower, video_dir)):
        torch.manual_seed(0)
        cls(pretrained=str(directory))
        states.append(torch.random.get_rng_state())
    assert torch.equal(states[0], states[1])


def test_idle_pixels_are_one_item_in_each_towers_layout():
    """What a sharded run's rank encodes when its batch has none of a modality."""
    image, video = CLIPVisionTower(vision_dict()), LanguageBindVideoTower(vision_dict(), num_frames=2)
    assert image.idle_pixels().shape == (1, 3, 28, 28) and video.idle_pixels().shape == (1, 2, 3, 28, 28)
    assert image(image.idle_pixels()).shape == (1, image.tokens_per_image, image.hidden_size)
    assert video(video.idle_pixels()).shape == (1, 2 * video.tokens_per_frame, video.hidden_size)
