"""Alignment diagnostics of a model's towers, before and after the shared projector.

Video-LLaVA's claim is that towers aligned *before* the projector (LanguageBind's "united visual
representation") let one projector serve images and videos. :func:`measure_alignment` tests it on data:
for every video, its video-tower tokens against the image tower's tokens on its middle frame, each pooled
to one vector (mean over tokens), before and after the projector (:func:`lvlm.eval.alignment.alignment_scores`:
retrieval top-1 both ways over the batch, linear CKA), plus the norms of the projected tokens of every
modality against the LLM's input embedding rows. A modality without an image counterpart (a plugin's depth
maps, say) gets its norms and a note saying why the pair measures do not apply.

:class:`AlignmentDiagnostics` logs the same numbers at the end of every validation epoch.

Legend: ``n`` items, ``t`` frames, ``k`` tokens, ``d`` width.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import numpy as np
import torch
from PIL import Image

from lvlm.data.sample_format import media_members
from lvlm.eval.alignment import alignment_scores, norm_summary
from lvlm.modalities import Modality

Items = dict[str, list[tuple[str, Any]]]  # modality name -> [(sample key, payload)]


def read_media(shards: Sequence[str | Path], modalities: Mapping[str, Modality], limit: int = 64) -> Items:
    """Up to ``limit`` items of every modality from WebDataset shards, in shard order (first item per sample)."""
    import webdataset as wds

    found: Items = {name: [] for name in modalities}
    dataset = wds.WebDataset([str(s) for s in shards], shardshuffle=False, empty_check=False)
    for sample in dataset:
        members = media_members(sample, list(modalities.values()))
        for name, items in members.items():
            if items and len(found[name]) < limit:
                found[name].append((str(sample["__key__"]), items[0][1]))
        if all(len(v) >= limit for v in found.values()):
            break
    return found


def _frame_based(modality: Modality) -> bool:
    return modality.tower_facts.num_frames is not None


def _middle_frame(decoded: Any) -> Image.Image:
    """The middle frame of a decoded ``[t, h, w, 3]`` uint8 clip, as an RGB image."""
    frames = np.asarray(decoded)
    return Image.fromarray(frames[frames.shape[0] // 2].astype(np.uint8)).convert("RGB")


@torch.no_grad()
def measure_alignment(
    model: torch.nn.Module, modalities: Mapping[str, Modality], items: Items, num_frames: int = 8
) -> dict[str, Any]:
    """The diagnostics of ``model`` (a :class:`~lvlm.models.video_llava.VideoLLaVA`) on decoded ``items``.

    Args:
        model: has ``towers``, ``projector`` and ``llm``.
        modalities: the model's modalities by name (decoding and transforms; from the training module or an
            inference session).
        items: :func:`read_media`'s output.
        num_frames: frames sampled from every video.

    Returns:
        ``{"pairs": {name: {"n", "before_projector": {...}, "after_projector": {...}}}, "norms": {name or
        "llm_embeddings": {"mean", "p99"}}, "not_applicable": {name: reason}}``.
    """
    report: dict[str, Any] = {"pairs": {}, "norms": {}, "not_applicable": {}}
    embeddings = model.llm.causal_lm.get_input_embeddings().weight
    report["norms"]["llm_embeddings"] = norm_summary(embeddings)
    image = modalities.get("image")
    for name, modality in modalities.items():
        if not items.get(name):
            report["not_applicable"][name] = "no items of this modality in the data"
            continue
        loaded = [(key, modality.decode(payload, key=key, num_frames=num_frames)) for key, payload in items[name]]
        transform = modality.make_transform()
        tokens = _tower_tokens(model, name, torch.stack([transform(item) for _, item in loaded]))
        projected = model.projector(tokens)
        report["norms"][name] = norm_summary(projected)
        if name == "image":
            continue
        if image is None or not _frame_based(modality):
            why = "no image counterpart" + ("" if image is None else f": {name} items have no frames")
            report["not_applicable"][name] = f"{why}; norms only"
            continue
        if len(loaded) < 2:
            report["not_applicable"][name] = "fewer than 2 items: no retrieval over a batch"
            continue
        image_transform = image.make_transform()
        frames = torch.stack(
            [image_transform(image.decode(_middle_frame(item), key=key, num_frames=1)) for key, item in loaded]
        )
        frame_tokens = _tower_tokens(model, "image", frames)
        report["pairs"][name] = {
            "n": len(loaded),
            "against": "image tower on the middle frame",
            "before_projector": alignment_scores(tokens.mean(1), frame_tokens.mean(1)),
            "after_projector": alignment_scores(projected.mean(1), model.projector(frame_tokens).mean(1)),
        }
    return report


def _tower_tokens(model: torch.nn.Module, name: str, pixels: torch.Tensor) -> torch.Tensor:
    """``[n, ...]`` pixels → ``[n, k, d]`` tower tokens, in batches of 32, in the projector's dtype and device."""
    device = next(model.projector.parameters()).device
    dtype = next(model.projector.parameters()).dtype
    parts = [model.towers[name](chunk.to(device)) for chunk in pixels.split(32)]
    return torch.cat(parts).to(dtype)


def flat_metrics(report: Mapping[str, Any], prefix: str = "alignment") -> dict[str, float]:
    """The report's numbers as ``prefix/<modality>/<before|after>_projector/<measure>`` scalars."""
    metrics: dict[str, float] = {}
    for name, pair in report["pairs"].items():
        for where in ("before_projector", "after_projector"):
            metrics |= {f"{prefix}/{name}/{where}/{k}": float(v) for k, v in pair[where].items()}
    for name, norms in report["norms"].items():
        metrics |= {f"{prefix}/norm/{name}/{k}": float(v) for k, v in norms.items()}
    return metrics


class AlignmentDiagnostics(pl.Callback):
    """Logs :func:`measure_alignment` at the end of each validation epoch (sanity check excluded).

    Args:
        shards: WebDataset shards whose media are measured (the validation split, typically).
        max_items: items read per modality (retrieval is over this batch: chance is ``1 / max_items``).
        num_frames: frames per video.
        json_path: also write the latest report there.

    Add it from a recipe: ``trainer.callbacks: [{class_path: lvlm.training.alignment_callback.AlignmentDiagnostics,
    init_args: {shards: [...]}}]``.
    """

    def __init__(
        self, shards: list[str], max_items: int = 64, num_frames: int = 8, json_path: str | None = None
    ) -> None:
        self.shards, self.max_items, self.num_frames, self.json_path = shards, max_items, num_frames, json_path
        self._items: Items | None = None
        self.last_report: dict[str, Any] | None = None

    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        if self._items is None:
            self._items = read_media(self.shards, pl_module.modalities, self.max_items)
        self.last_report = measure_alignment(pl_module.model, pl_module.modalities, self._items, self.num_frames)
        pl_module.log_dict(flat_metrics(self.last_report), on_epoch=True)
        if self.json_path and trainer.is_global_zero:
            Path(self.json_path).write_text(json.dumps(self.last_report, indent=2) + "\n", encoding="utf-8")
