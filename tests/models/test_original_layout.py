"""The original Video-LLaVA layout and LanguageBind tower directories load exactly."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from lvlm import VideoLLaVA
from lvlm.models.checkpoints.languagebind import load_languagebind_tower
from lvlm.models.io.weights import CheckpointKeyError
from tests.models.original_fixtures import FRAMES, write_languagebind_dir, write_original_dir
from tests.models.tiny import pixels


@pytest.fixture(scope="module")
def dirs(tmp_path_factory):
    root = tmp_path_factory.mktemp("original")
    write_languagebind_dir(root / "LanguageBind_Image", "image", seed=1)
    write_languagebind_dir(root / "LanguageBind_Video_merge", "video", seed=2)
    state = write_original_dir(root / "Video-LLaVA-7B", root / "LanguageBind_Image", root / "LanguageBind_Video_merge")
    return root, state


def reference_temporal_layer(x: torch.Tensor, p: dict[str, torch.Tensor], t: int, heads: int) -> torch.Tensor:
    """One LanguageBind video layer written from the spec's words (§1.5), independent of lvlm's code.

    ``x`` is ``[(b t), n, d]``; ``p`` the layer's weights by their checkpoint names.
    """
    bt, n, d = x.shape
    x = x.reshape(bt // t, t, n, d)
    if t != 1:  # 1. temporal embedding added to every token track, CLS included
        x = x + p["temporal_embedding"][0, :t][None, :, None, :]

    def attention(h, prefix):  # bidirectional multi-head attention over dim -2
        q, k, v = (F.linear(h, p[f"{prefix}.{n}_proj.weight"], p[f"{prefix}.{n}_proj.bias"]) for n in "qkv")
        split = lambda z: z.unflatten(-1, (heads, d // heads)).transpose(-3, -2)  # noqa: E731
        weights = torch.softmax(split(q) @ split(k).transpose(-1, -2) / math.sqrt(d // heads), dim=-1)
        out = (weights @ split(v)).transpose(-3, -2).flatten(-2)
        return F.linear(out, p[f"{prefix}.out_proj.weight"], p[f"{prefix}.out_proj.bias"])

    def norm(h, name):
        return F.layer_norm(h, (d,), p[f"{name}.weight"], p[f"{name}.bias"], eps=1e-5)

    tracks = x.permute(0, 2, 1, 3)  # 2. pre-norm temporal attention across frames per position: [b, n, t, d]
    tracks = tracks + attention(norm(tracks, "temporal_layer_norm1"), "temporal_attn")
    x = tracks.permute(0, 2, 1, 3).reshape(bt, n, d)
    x = x + attention(norm(x, "layer_norm1"), "self_attn")  # 3. the CLIP spatial block, exact GELU
    hidden = F.gelu(F.linear(norm(x, "layer_norm2"), p["mlp.fc1.weight"], p["mlp.fc1.bias"]))
    return x + F.linear(hidden, p["mlp.fc2.weight"], p["mlp.fc2.bias"])


def test_original_checkpoint_loads_every_key(dirs):
    root, state = dirs
    model = VideoLLaVA.from_pretrained(root / "Video-LLaVA-7B")
    loaded = model.state_dict()
    video, image = "model.video_tower.video_tower.", "model.image_tower.image_tower."
    expected = {
        "towers.video.vit.encoder.layers.1.temporal_attn.q_proj.weight": video
        + "encoder.layers.1.temporal_attn.q_proj.weight",
        "towers.video.vit.encoder.layers.2.temporal_embedding": video + "encoder.layers.2.temporal_embedding",
        "towers.video.vit.encoder.layers.0.temporal_layer_norm1.bias": video
        + "encoder.layers.0.temporal_layer_norm1.bias",
        "towers.image.vit.embeddings.patch_embedding.weight": image + "embeddings.patch_embedding.weight",
        "projector.0.weight": "model.mm_projector.0.weight",
        "projector.2.bias": "model.mm_projector.2.bias",
        "llm.causal_lm.model.layers.1.mlp.down_proj.weight": "model.layers.1.mlp.down_proj.weight",
        "llm.causal_lm.lm_head.weight": "lm_head.weight",
    }
    for ours, theirs in expected.items():
        n = state[theirs].shape[0]
        assert torch.equal(loaded[ours][:n], state[theirs]), ours
    # LanguageBind's configs say exact GELU; the original tower loader honoured it.
    assert model.towers["video"].config.hidden_act == "gelu"
    assert model.towers["video"].tokens_per_frame == 5 and model.towers["image"].tokens_per_image == 4
    assert model.chat_template == "llava_v1"


def test_temporal_layer_matches_spec_reference(dirs):
    root, state = dirs
    model = VideoLLaVA.from_pretrained(root / "Video-LLaVA-7B")
    layer = model.towers["video"].vit.encoder.layers[1]
    prefix = "model.video_tower.video_tower.encoder.layers.1."
    weights = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
    x = torch.randn(2 * FRAMES, 5, 32, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        ours = layer(x, None, num_frames=FRAMES)
    assert (ours - reference_temporal_layer(x, weights, FRAMES, heads=4)).abs().max().item() < 1e-5


def test_whole_video_tower_matches_reference_stack(dirs):
    root, state = dirs
    model = VideoLLaVA.from_pretrained(root / "Video-LLaVA-7B")
    video = pixels(2, FRAMES)
    prefix = "model.video_tower.video_tower."
    p = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
    frames = video.flatten(0, 1)
    patches = F.conv2d(frames, p["embeddings.patch_embedding.weight"], stride=14).flatten(2).transpose(1, 2)
    cls = p["embeddings.class_embedding"].expand(frames.shape[0], 1, -1)
    x = torch.cat([cls, patches], 1) + p["embeddings.position_embedding.weight"]
    x = F.layer_norm(x, (32,), p["pre_layrnorm.weight"], p["pre_layrnorm.bias"], eps=1e-5)
    for i in range(2):  # select_layer -2 of 3 layers: hidden_states[-2] is the output of layer index 1
        layer = {k[len(f"encoder.layers.{i}.") :]: v for k, v in p.items() if k.startswith(f"encoder.layers.{i}.")}
        x = reference_temporal_layer(x, layer, FRAMES, heads=4)
    with torch.no_grad():
        ours = model.towers["video"](video)
    assert ours.shape == (2, FRAMES * 5, 32)
    assert (ours - x.reshape(2, FRAMES * 5, 32)).abs().max().item() < 1e-5


def test_other_frame_counts_interpolate_with_one_warning(dirs):
    root, _ = dirs
    tower = VideoLLaVA.from_pretrained(root / "Video-LLaVA-7B").towers["video"]
    with pytest.warns(UserWarning, match="trained with 4 frames got 6") as caught:
        out = tower(pixels(1, 6))
        tower(pixels(1, 6))
    assert len([w for w in caught if "frames got" in str(w.message)]) == 1
    assert out.shape == (1, 6 * 5, 32)


def test_forward_with_image_and_video(dirs):
    root, _ = dirs
    model = VideoLLaVA.from_pretrained(root / "Video-LLaVA-7B")
    image_id, video_id = model.modalities["image"].token_id, model.modalities["video"].token_id
    assert (image_id, video_id) == (96, 97)  # appended after the original 96-token vocabulary
    ids = torch.tensor([[1, 5] + [video_id] * (FRAMES * 5) + [image_id] * 4 + [7, 8]])
    out = model(ids, images=pixels(1), videos=pixels(1, FRAMES), labels=ids)
    assert out.logits.shape == (1, ids.shape[1], 98) and torch.isfinite(out.loss)


def test_missing_and_unexpected_keys_are_listed(dirs, tmp_path):
    root, state = dirs
    broken = dict(state)
    del broken["model.mm_projector.2.bias"]
    broken["model.extra_head.weight"] = torch.zeros(2)
    import shutil

    shutil.copy(root / "Video-LLaVA-7B" / "config.json", tmp_path / "config.json")
    torch.save(broken, tmp_path / "pytorch_model.bin")
    with pytest.raises(CheckpointKeyError) as error:
        VideoLLaVA.from_pretrained(tmp_path)
    message = str(error.value)
    assert "projector.2.bias" in message and "model.extra_head.weight" in message and str(tmp_path) in message


def test_languagebind_image_dir_with_lora_is_merged(tmp_path):
    tower_weights = write_languagebind_dir(tmp_path / "img", "image", seed=5, lora=True)
    raw = torch.load(tmp_path / "img" / "pytorch_model.bin", weights_only=True)
    tower = load_languagebind_tower(tmp_path / "img")
    base = "vision_model.encoder.base_model.model.layers.0.self_attn.q_proj"
    lora_a, lora_b = raw[f"{base}.lora_A.default.weight"], raw[f"{base}.lora_B.default.weight"]
    expected = tower_weights["encoder.layers.0.self_attn.q_proj.weight"] + lora_b @ lora_a * (4 / 2)
    merged = tower.state_dict()["vit.encoder.layers.0.self_attn.q_proj.weight"]
    assert torch.allclose(merged, expected, atol=1e-6)
    assert torch.equal(
        tower.state_dict()["vit.encoder.layers.0.mlp.fc1.weight"], tower_weights["encoder.layers.0.mlp.fc1.weight"]
    )


def test_languagebind_video_dir_loads_as_tower(tmp_path):
    weights = write_languagebind_dir(tmp_path / "vid", "video", seed=6)
    tower = load_languagebind_tower(tmp_path / "vid")
    assert tower.temporal_attention and tower.num_frames == FRAMES
    key = "encoder.layers.2.temporal_attn.v_proj.bias"
    assert torch.equal(tower.state_dict()[f"vit.{key}"], weights[key])
    with pytest.raises(ValueError, match="standalone LanguageBind tower"):
        VideoLLaVA.from_pretrained(tmp_path / "vid")


def test_a_tower_that_cannot_be_found_is_an_error_that_says_how_to_supply_it(dirs, tmp_path):
    """No tower config is guessed from the weights (a guessed head count would load silently wrong)."""
    import json
    import shutil

    from lvlm.models.io.hub import CheckpointNotFoundError

    root, _ = dirs
    moved = tmp_path / "Video-LLaVA-7B"
    shutil.copytree(root / "Video-LLaVA-7B", moved)
    config = json.loads((moved / "config.json").read_text())
    config["mm_image_tower"] = str(tmp_path / "gone" / "LanguageBind_Image")
    (moved / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointNotFoundError) as error:
        VideoLLaVA.from_pretrained(moved)
    message = str(error.value)
    assert "LanguageBind_Image" in message and "image_tower=DIR" in message and "mm_image_tower" in message
    # Supplying the tower as the message says loads the model.
    model = VideoLLaVA.from_pretrained(moved, image_tower=root / "LanguageBind_Image")
    assert (
        model.towers["image"].config.num_attention_heads
        == load_languagebind_tower(root / "LanguageBind_Image", modality="image").config.num_attention_heads
    )


def test_loss_equals_the_original_vocabularys_loss(dirs):
    """The original had no placeholder rows: its loss is the cross-entropy over its own vocabulary."""
    root, state = dirs
    model = VideoLLaVA.from_pretrained(root / "Video-LLaVA-7B").eval()
    vocab = state["lm_head.weight"].shape[0]
    assert model.llm.vocab_size == vocab + 2  # <image>, <video> appended
    ids = torch.randint(3, vocab, (2, 24), generator=torch.Generator().manual_seed(0))
    labels = ids.masked_fill(torch.arange(24) < 4, -100)
    with torch.no_grad():
        logits = model(ids).logits
        loss, full = model(ids, labels=labels).loss, model(ids, labels=labels, full_vocabulary_loss=True).loss
    original = F.cross_entropy(logits[:, :-1, :vocab].flatten(0, 1), labels[:, 1:].flatten(), ignore_index=-100)
    assert abs(loss.item() - original.item()) <= 1e-6
    assert full.item() - loss.item() > 1e-3  # transformers' loss gives the appended rows probability mass
