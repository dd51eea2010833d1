"""The tower arms of ``lvlm ablate``: the paper's three encoder conditions, in miniature, on the synthetic world.

- ``unified``: the quickstart's supervised warm-up (:func:`lvlm.apps.quickstart_towers.warmup_loss`) plus a
  symmetric InfoNCE that pulls the mean token of each image and each video onto the embedding of its caption
  under one shared caption encoder (a bag of words), with a learnable temperature (init 0.07), as LanguageBind
  aligns every modality to one text space (arXiv 2310.01852). Both towers land in one language-aligned space.
- ``separated``: the same supervised warm-up alone: each tower learns its own read-outs, nothing ties their
  spaces (the paper's "separated encoders").
- ``random``: freshly initialised towers, never trained: the floor.

The two warmed-up arms differ by the caption term only, so a difference between them is the alignment's.
Every arm is written as LanguageBind tower directories (``image/``, ``video/``) that any recipe loads.

Legend: ``n`` items, ``k`` tokens, ``d`` width, ``w`` words.
"""

from __future__ import annotations

import json
import math
import random
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from lvlm.apps.quickstart_towers import (
    WarmupHeads,
    WarmupSettings,
    _scenes,
    image_batch,
    save_languagebind_tower,
    video_batch,
    warm_up_towers,
    warmup_loss,
)
from lvlm.apps.synthetic_runs import FRAMES, TOWER
from lvlm.core.work_folder import write_atomic
from lvlm.data import synthetic
from lvlm.models.vision.clip_tower import LanguageBindImageTower, LanguageBindVideoTower

TOWER_ARMS = ("unified", "separated", "random")
# The caption term's weight against the supervised read-outs: at 1 the pooled tokens of a video and of its
# middle frame found each other at 0.06-0.08 top-1 over 64 videos after 300-400 steps, at 4 at 0.11 (chance 0.016).
CAPTION_WEIGHT = 4.0
WORDS = ["a", "and", "moving", "turning", *synthetic.COLORS, *synthetic.SHAPES, *synthetic.DIRECTIONS]


class CaptionEncoder(nn.Module):
    """A bag-of-words caption encoder: the mean of learned word vectors, L2-normalised (``[n, d]``)."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.words = nn.EmbeddingBag(len(WORDS), width, mode="mean")
        self.log_scale = nn.Parameter(torch.tensor(math.log(1 / 0.07)))  # CLIP's learnable temperature

    def forward(self, captions: list[str]) -> torch.Tensor:
        ids = [torch.tensor([WORDS.index(w) for w in c.replace(",", "").split()]) for c in captions]
        offsets = torch.tensor([0, *torch.cumsum(torch.tensor([len(i) for i in ids]), 0)[:-1].tolist()])
        return F.normalize(self.words(torch.cat(ids), offsets), dim=-1)


def caption_loss(visual: torch.Tensor, text: torch.Tensor, log_scale: torch.Tensor) -> torch.Tensor:
    """Symmetric InfoNCE between ``[n, d]`` pooled visual features and ``[n, d]`` normalised caption embeddings."""
    logits = F.normalize(visual, dim=-1) @ text.T * log_scale.clamp(max=math.log(100)).exp()
    truth = torch.arange(visual.shape[0])
    return (F.cross_entropy(logits, truth) + F.cross_entropy(logits.T, truth)) / 2


def warm_up_unified(
    image_tower: LanguageBindImageTower,
    video_tower: LanguageBindVideoTower,
    sizes: synthetic.WorldSizes,
    settings: WarmupSettings,
    caption_weight: float = CAPTION_WEIGHT,
) -> dict[str, float]:
    """The supervised warm-up plus the shared caption term; towers frozen at the end. Returns the last stats."""
    torch.manual_seed(settings.seed)
    rng = random.Random(f"tower-warmup/{settings.seed}")
    heads, captions = WarmupHeads(image_tower.hidden_size), CaptionEncoder(image_tower.hidden_size)
    towers = (image_tower.unfreeze().train(), video_tower.unfreeze().train())
    params = [p for module in (*towers, heads, captions) for p in module.parameters()]
    optimizer = torch.optim.AdamW(params, lr=settings.lr, weight_decay=0.0)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, settings.lr, total_steps=settings.steps, pct_start=0.1)
    pre = image_tower.preprocessing
    mean, std = torch.tensor(pre.mean).view(3, 1, 1), torch.tensor(pre.std).view(3, 1, 1)
    grid, half = pre.size // image_tower.config.patch_size, settings.batch_size // 2
    stats: dict[str, float] = {}
    for _ in range(settings.steps):
        image_scenes, video_scenes = _scenes(rng, "image", half, sizes), _scenes(rng, "video", half, sizes)
        images = image_batch(image_scenes, pre.size, grid, mean, std)
        videos = video_batch(video_scenes, pre.size, sizes.video_frames, grid, mean, std)
        loss, stats = warmup_loss(image_tower, video_tower, heads, images, videos)
        # The mean token of each tower, compared with one caption space (recomputed: warmup_loss keeps no tokens).
        # The image-text pairs include stills of the video world (the middle frame, "a blue circle"): an image
        # tower aligned to language has seen objects anywhere, not only at the centres of the 3x3 grid.
        stills = videos["pixels"][:, sizes.video_frames // 2]
        pooled = torch.cat(
            [image_tower(torch.cat([images["pixels"], stills])).mean(1), video_tower(videos["pixels"]).mean(1)]
        )
        text = captions(
            [synthetic.caption(s) for s in image_scenes]
            + [f"a {s['end_color']} {s['shape']}" for s in video_scenes]  # the colour from the middle frame on
            + [synthetic.caption(s) for s in video_scenes]
        )
        aligned = caption_loss(pooled, text, captions.log_scale)
        optimizer.zero_grad(set_to_none=True)
        (loss + caption_weight * aligned).backward()
        optimizer.step()
        schedule.step()
        stats |= {"loss": loss.item(), "caption_loss": aligned.item()}
    for tower in towers:
        tower.freeze()
    return stats


def build_towers(seed: int) -> tuple[LanguageBindImageTower, LanguageBindVideoTower]:
    """The quickstart's tiny towers, freshly initialised from ``seed``."""
    torch.manual_seed(seed)
    image = LanguageBindImageTower(TOWER, select_layer=-1, select_feature="patch")
    video = LanguageBindVideoTower(TOWER, select_layer=-1, select_feature="cls_patch", num_frames=FRAMES)
    return image, video


def write_tower_arm(arm: str, directory: Path, sizes: synthetic.WorldSizes, steps: int, seed: int) -> dict:
    """Build, warm up (per ``arm``) and save one arm's towers to ``directory/{image,video}``; returns the stats.

    ``directory/arm.json`` is written last: its presence marks a finished arm (a rerun skips it).
    """
    if arm not in TOWER_ARMS:
        raise ValueError(f"unknown tower arm {arm!r}; known: {list(TOWER_ARMS)}")
    image, video = build_towers(seed)
    settings = WarmupSettings(steps=steps, seed=seed)
    if arm == "unified":
        stats = warm_up_unified(image, video, sizes, settings)
    elif arm == "separated":
        stats = warm_up_towers(image, video, sizes, settings)
    else:
        image.freeze()
        video.freeze()
        stats = {}
    save_languagebind_tower(image, directory / "image")
    save_languagebind_tower(video, directory / "video")
    record = {"arm": arm, "seed": seed, "steps": 0 if arm == "random" else steps, "stats": stats}
    write_atomic(directory / "arm.json", json.dumps(record, indent=2) + "\n")  # the arm's marker: whole or absent
    return record
