"""The quickstart's towers: tiny LanguageBind-style towers, warmed up on the synthetic world, then frozen.

Video-LLaVA keeps its towers frozen; what makes that work is that LanguageBind aligned them to language
beforehand. A fresh machine cannot download LanguageBind, and frozen *random* towers are not enough: in our
measurements a projector + tiny Llama on frozen random towers learned video colour and event but stayed at
chance on motion direction and image colour-of-a-shape. So the quickstart gives its towers a short
supervised warm-up on freshly drawn synthetic scenes (never the test split's), standing in for LanguageBind's
alignment: the image tower learns each grid cell's colour and shape and, on every token, the scene's facts
(object count, each shape's colour); the video tower learns, on every token, the shape, its start and end
colour and the direction of motion, and where the shape is in every frame. The warmed-up towers are
written as LanguageBind directories (``config.json`` + ``model.safetensors``) and the quickstart recipes load
them with the very loader used for the real ``LanguageBind/LanguageBind_*`` towers, frozen as in the paper.

Legend: ``n`` items, ``t`` frames, ``g`` grid side in patches, ``k`` tokens, ``d`` width.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from lvlm.data import synthetic, synthetic_render
from lvlm.models.io.weights import write_state_dict
from lvlm.models.vision.clip_tower import LanguageBindImageTower, LanguageBindVideoTower

COLORS, SHAPES, DIRECTIONS = list(synthetic.COLORS), list(synthetic.SHAPES), list(synthetic.DIRECTIONS)
NO_OBJECT = "none"


@dataclass(frozen=True)
class WarmupSettings:
    """How long and how fast the towers warm up (AdamW, one-cycle schedule)."""

    steps: int = 600
    batch_size: int = 32
    lr: float = 2e-3
    seed: int = 0


class WarmupHeads(nn.Module):
    """Linear read-outs used only during the warm-up (thrown away afterwards)."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.cell_color = nn.Linear(width, len(COLORS) + 1)
        self.cell_shape = nn.Linear(width, len(SHAPES) + 1)
        self.direction = nn.Linear(width, len(DIRECTIONS) + 1)
        self.shape = nn.Linear(width, len(SHAPES))
        self.start_color = nn.Linear(width, len(COLORS))
        self.end_color = nn.Linear(width, len(COLORS))
        self.occupied = nn.Linear(width, 2)
        self.count = nn.Linear(width, 3)
        self.shape_colors = nn.Linear(width, len(SHAPES) * (len(COLORS) + 1))


def _pixels(array: np.ndarray, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """uint8 ``[..., h, w, 3]`` → normalised float ``[..., 3, h, w]``."""
    x = torch.from_numpy(np.array(array, dtype=np.float32)).div(255).movedim(-1, -3)
    return (x - mean) / std


def _patch_of(x: float, y: float, size: int, grid: int) -> int:
    return min(int(y * grid / size), grid - 1) * grid + min(int(x * grid / size), grid - 1)


def image_batch(scenes: list[dict[str, Any]], size: int, grid: int, mean, std) -> dict[str, torch.Tensor]:
    """Pixels ``[n, 3, s, s]``, per-patch colour/shape targets ``[n, g*g]`` (the patch under each object), the
    object count ``[n]`` and the colour of each shape (``none`` if absent) ``[n, shapes]``."""
    pixels = torch.stack([_pixels(np.asarray(synthetic_render.render_image(s, size)), mean, std) for s in scenes])
    colors = torch.full((len(scenes), grid * grid), len(COLORS))
    shapes = torch.full((len(scenes), grid * grid), len(SHAPES))
    shape_colors = torch.full((len(scenes), len(SHAPES)), len(COLORS))
    cell = size / 3
    for n, scene in enumerate(scenes):
        for color, shape, index in scene["objects"]:
            patch = _patch_of((index % 3 + 0.5) * cell, (index // 3 + 0.5) * cell, size, grid)
            colors[n, patch], shapes[n, patch] = COLORS.index(color), SHAPES.index(shape)
            shape_colors[n, SHAPES.index(shape)] = COLORS.index(color)
    count = torch.tensor([len(s["objects"]) - 1 for s in scenes])
    return {"pixels": pixels, "colors": colors, "shapes": shapes, "count": count, "shape_colors": shape_colors}


def video_batch(scenes: list[dict[str, Any]], size: int, frames: int, grid: int, mean, std) -> dict[str, torch.Tensor]:
    """Pixels ``[n, t, 3, s, s]``, clip-level targets ``[n]`` and per-frame occupancy ``[n, t, g*g]``."""
    pixels = torch.stack([_pixels(synthetic_render.render_video(s, size, frames), mean, std) for s in scenes])
    occupied = torch.zeros(len(scenes), frames, grid * grid, dtype=torch.long)
    for n, scene in enumerate(scenes):
        for t, (x, y) in enumerate(synthetic_render.video_positions(scene, size, frames)):
            occupied[n, t, _patch_of(x, y, size, grid)] = 1
    return {
        "pixels": pixels,
        "direction": torch.tensor([DIRECTIONS.index(s["direction"]) if s["direction"] else 4 for s in scenes]),
        "shape": torch.tensor([SHAPES.index(s["shape"]) for s in scenes]),
        "start_color": torch.tensor([COLORS.index(s["color"]) for s in scenes]),
        "end_color": torch.tensor([COLORS.index(s["end_color"]) for s in scenes]),
        "occupied": occupied,
    }


def _scenes(rng: random.Random, modality: str, count: int, sizes: synthetic.WorldSizes) -> list[dict[str, Any]]:
    """``count`` scenes of one modality, drawn like the world's own (from a seed the world never uses)."""
    scenes: list[dict[str, Any]] = []
    while len(scenes) < count:
        scene = synthetic.sample_scene(rng, "stage2/test", sizes)
        if scene["modality"] == modality:
            scenes.append(scene)
    return scenes


def warmup_loss(
    image_tower: LanguageBindImageTower,
    video_tower: LanguageBindVideoTower,
    heads: WarmupHeads,
    images: dict[str, torch.Tensor],
    videos: dict[str, torch.Tensor],
) -> tuple[torch.Tensor, dict[str, float]]:
    """Sum of the read-out cross-entropies, and the batch's accuracies (per token: direction, cell colour/shape)."""
    image_tokens = image_tower(images["pixels"])  # [n, g*g, d] (CLS dropped)
    cell_color, cell_shape = heads.cell_color(image_tokens), heads.cell_shape(image_tokens)
    loss = F.cross_entropy(cell_color.flatten(0, 1), images["colors"].flatten())
    loss = loss + F.cross_entropy(cell_shape.flatten(0, 1), images["shapes"].flatten())
    # Scene-level facts on every image token too (what captions say: how many objects, which shape has which
    # colour), as LanguageBind's language alignment puts scene content into every patch token.
    k = image_tokens.shape[1]
    flat = image_tokens.flatten(0, 1)
    loss = loss + F.cross_entropy(heads.count(flat), images["count"].repeat_interleave(k))
    shape_colors = heads.shape_colors(flat).reshape(flat.shape[0] * len(SHAPES), len(COLORS) + 1)
    shape_color_targets = images["shape_colors"].repeat_interleave(k, dim=0).flatten()
    loss = loss + F.cross_entropy(shape_colors, shape_color_targets)
    n, t = videos["pixels"].shape[:2]
    video_tokens = video_tower(videos["pixels"])  # [n, t * (1 + g*g), d] (CLS kept per frame)
    k = video_tokens.shape[1]
    # Every token predicts the clip's labels (not only a pooled vector): 40x the gradient signal, and
    # the LLM later finds the motion in whichever video token it attends to.
    tokens = video_tokens.flatten(0, 1)
    direction = heads.direction(tokens)
    for name in ("shape", "start_color", "end_color", "direction"):
        loss = loss + F.cross_entropy(getattr(heads, name)(tokens), videos[name].repeat_interleave(k))
    patches = video_tokens.reshape(n, t, -1, video_tokens.shape[-1])[:, :, 1:]
    loss = loss + F.cross_entropy(heads.occupied(patches).flatten(0, 2), videos["occupied"].flatten())
    accuracy = (direction.argmax(-1) == videos["direction"].repeat_interleave(k)).float().mean().item()
    return loss, {
        "direction_accuracy": accuracy,
        "cell_color_accuracy": (cell_color.argmax(-1) == images["colors"]).float().mean().item(),
        "cell_shape_accuracy": (cell_shape.argmax(-1) == images["shapes"]).float().mean().item(),
        "shape_color_accuracy": (shape_colors.argmax(-1) == shape_color_targets).float().mean().item(),
    }


def warm_up_towers(
    image_tower: LanguageBindImageTower,
    video_tower: LanguageBindVideoTower,
    sizes: synthetic.WorldSizes,
    settings: WarmupSettings = WarmupSettings(),
    progress: Any = None,
) -> dict[str, float]:
    """Train both towers in place on freshly drawn scenes; they are frozen again at the end.

    Args:
        image_tower, video_tower: the towers (square input ``sizes.image_size``, video ``sizes.video_frames``).
        sizes: the world's sizes (image size, frames).
        settings: steps, batch size, learning rate, seed.
        progress: a tqdm-like object with ``update()`` and ``set_postfix()``, or None.

    Returns:
        The last step's loss and direction accuracy.
    """
    torch.manual_seed(settings.seed)
    rng = random.Random(f"tower-warmup/{settings.seed}")
    heads = WarmupHeads(image_tower.hidden_size)
    towers = (image_tower.unfreeze().train(), video_tower.unfreeze().train())
    params = [p for module in (*towers, heads) for p in module.parameters()]
    optimizer = torch.optim.AdamW(params, lr=settings.lr, weight_decay=0.0)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, settings.lr, total_steps=settings.steps, pct_start=0.1)
    pre = image_tower.preprocessing
    mean, std = torch.tensor(pre.mean).view(3, 1, 1), torch.tensor(pre.std).view(3, 1, 1)
    grid = pre.size // image_tower.config.patch_size
    half = settings.batch_size // 2
    stats: dict[str, float] = {}
    for _ in range(settings.steps):
        images = image_batch(_scenes(rng, "image", half, sizes), pre.size, grid, mean, std)
        videos = video_batch(_scenes(rng, "video", half, sizes), pre.size, sizes.video_frames, grid, mean, std)
        loss, stats = warmup_loss(image_tower, video_tower, heads, images, videos)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
        stats["loss"] = loss.item()
        if progress is not None:
            progress.update()
            progress.set_postfix(
                loss=f"{stats['loss']:.3f}",
                direction=f"{stats['direction_accuracy']:.2f}",
                cell_shape=f"{stats['cell_shape_accuracy']:.2f}",
            )
    for tower in towers:
        tower.freeze()
    return stats


def save_languagebind_tower(tower: LanguageBindImageTower | LanguageBindVideoTower, directory: str | Path) -> Path:
    """Write a tower as a LanguageBind directory that ``load_languagebind_tower`` reads back."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    video = isinstance(tower, LanguageBindVideoTower)
    vision = tower.config.to_diff_dict() | {"hidden_act": tower.config.hidden_act}
    if video:
        vision |= {"num_frames": tower.num_frames, "add_time_attn": tower.temporal_attention}
    config = {"model_type": "LanguageBindVideo" if video else "LanguageBindImage", "vision_config": vision}
    (directory / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    state = {f"vision_model.{k.removeprefix('vit.')}": v for k, v in tower.state_dict().items()}
    write_state_dict(state, directory)
    return directory
