"""A third modality (depth maps) added from outside the package, without editing lvlm."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from torch import nn

from lvlm import VideoLLaVA
from lvlm.core.errors import UnsafeInputError
from lvlm.models.language_model import LanguageModel
from lvlm.models.vision.base import Preprocessing, VisionTower
from lvlm.models.vision.clip_tower import CLIPVisionTower
from tests.models.tiny import pixels, text_dict, vision_dict


class DepthTower(VisionTower):
    """One-channel depth maps → patch tokens, as a user would write it."""

    def __init__(self, width: int = 32, size: int = 28, patch: int = 14, frozen: bool = False) -> None:
        super().__init__(frozen=frozen)
        self.width, self.size, self.patch = width, size, patch
        self.embed = nn.Conv2d(1, width, patch, stride=patch)
        self.block = nn.TransformerEncoderLayer(width, 4, 2 * width, batch_first=True)
        if frozen:
            self.freeze()

    preprocessing = property(lambda self: Preprocessing(self.size, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5)))
    hidden_size = property(lambda self: self.width)
    tokens_per_image = property(lambda self: (self.size // self.patch) ** 2)
    block_classes = property(lambda self: (nn.TransformerEncoderLayer,))

    def to_config(self) -> dict[str, Any]:
        return {"width": self.width, "size": self.size, "patch": self.patch}

    def encode_frames(self, pixels: torch.Tensor, num_frames: int) -> torch.Tensor:
        return self.block(self.embed(pixels).flatten(2).transpose(1, 2))


def build_model() -> VideoLLaVA:
    torch.manual_seed(0)
    towers = {"image": CLIPVisionTower(vision_dict())}
    return VideoLLaVA.build(LanguageModel(config=text_dict()), towers)


def test_depth_modality_forward_and_backward():
    model = build_model()
    depth = model.add_modality("depth", DepthTower())
    assert depth.token == "<depth>" and depth.input_name == "depths" and depth.token_id == 97
    image_id = model.modalities["image"].token_id
    ids = torch.tensor([[1] + [depth.token_id] * 4 + [5, 6] + [image_id] * 4 + [7]])
    out = model(ids, images=pixels(1), depths=torch.randn(1, 1, 28, 28), labels=ids)
    out.loss.backward()
    assert model.towers["depth"].embed.weight.grad is not None
    assert model.projector[0].weight.grad is not None
    assert all(p.grad is None for p in model.towers["image"].parameters())  # still frozen


def test_a_tower_of_an_unregistered_package_is_refused_before_import(tmp_path):
    model = build_model()
    model.add_modality("depth", DepthTower())
    model.eval().save_pretrained(tmp_path)
    config = (tmp_path / "lvlm_config.json").read_text()
    assert '"class_path": "tests.models.test_new_modality.DepthTower"' in config
    # `tests` registered no `lvlm.*` entry point: a saved file may not make lvlm import it (the example plugin's
    # tests load a registered plugin's tower; tests/core/test_registry.py registers one in a temporary folder).
    with pytest.raises(UnsafeInputError, match=r"lvlm_config.json: towers.depth.class_path: refused"):
        VideoLLaVA.from_pretrained(tmp_path)
