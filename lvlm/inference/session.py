"""A loaded checkpoint ready to answer: model, tokenizer, chat template, media slots and transforms.

The chat template comes from the checkpoint. The original CLI guessed it from the model's *name* and fell to
``llava_v0`` for "Video-LLaVA-7B" (spec §7); a wrong template gives fluent but degraded answers and no error.
So lvlm never guesses: a checkpoint that records no template is an error until ``template=`` says which.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import torch
from transformers import PreTrainedTokenizerBase

from lvlm.data.media import MediaSlot
from lvlm.data.templates import ChatTemplate, get_template
from lvlm.data.transforms import ImageTransform, VideoTransform
from lvlm.models.io.tokenizer import load_tokenizer

log = logging.getLogger(__name__)

DEFAULT_NUM_FRAMES = 8
LVLM_CONFIG = "lvlm_config.json"


class TemplateNotRecordedError(ValueError):
    """The checkpoint does not say which chat template it was trained with."""


@dataclass
class InferenceSession:
    """Everything needed to turn questions and media into answers with one checkpoint.

    Attributes:
        model: the model, in eval mode.
        tokenizer: its tokenizer (holding the placeholder tokens).
        template: the chat template prompts are rendered with.
        slots: one media slot per modality (marker, placeholder token, batch key, tokens per item).
        num_frames: frames sampled from every video.
        image_mode: ``pad`` (the original's fine-tuning and evaluation) or ``crop``.
        max_length: the LLM's ``max_position_embeddings``: prompt plus answer must fit.
    """

    model: torch.nn.Module
    tokenizer: PreTrainedTokenizerBase
    template: ChatTemplate
    slots: list[MediaSlot]
    num_frames: int = DEFAULT_NUM_FRAMES
    image_mode: Literal["crop", "pad"] = "pad"
    max_length: int = 4096
    _transforms: dict[str, object] = field(default_factory=dict, repr=False)

    def slot(self, kind: str) -> MediaSlot:
        """The slot of a modality kind (``image`` or ``video``)."""
        for slot in self.slots:
            if slot.name == kind:
                return slot
        raise ValueError(f"this model has no {kind!r} modality; it takes {[s.name for s in self.slots]}")

    def transform(self, kind: str) -> ImageTransform | VideoTransform:
        """The deterministic (no augmentation, no flip) transform of a modality, built from its tower."""
        if kind not in self._transforms:
            slot = self.slot(kind)
            if slot.kind == "video":
                self._transforms[kind] = VideoTransform(slot.size, slot.mean, slot.std)
            else:
                self._transforms[kind] = ImageTransform(slot.size, slot.mean, slot.std, mode=self.image_mode)
        return self._transforms[kind]

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device


def recorded_template(model_dir: Path, model: torch.nn.Module) -> str | None:
    """The template name the checkpoint records, or None when it records none.

    An lvlm checkpoint records it in ``lvlm_config.json``; transformers' and the original layouts are loaded
    with ``llava_v1``, the template of the original's video evaluation and demo.
    """
    config_path = model_dir / LVLM_CONFIG
    if config_path.is_file():
        return json.loads(config_path.read_text()).get("chat_template")
    return getattr(model, "chat_template", None)


def media_slots(model: torch.nn.Module, image_mode: Literal["crop", "pad"] = "pad") -> list[MediaSlot]:
    """One slot per modality of the model, from its towers' declared preprocessing and token counts."""
    slots = []
    for name, modality in model.modalities.items():
        tower = model.towers[name]
        kind = "video" if name == "video" else "image"
        pre = tower.preprocessing
        tokens = tower.tokens_per_frame if kind == "video" else tower.tokens_per_image
        slots.append(
            MediaSlot(
                marker=f"<{name}>",
                token=modality.token,
                batch_key=modality.input_name,
                kind=kind,
                tokens_per_item=tokens,
                size=pre.size,
                mean=tuple(pre.mean),
                std=tuple(pre.std),
                image_mode=image_mode,
            )
        )
    return slots


def video_frames(model_dir: Path, model: torch.nn.Module) -> int:
    """Frames per video: the video tower's own ``num_frames``, else transformers' ``video_seq_length``, else 8."""
    tower = model.towers["video"] if "video" in model.towers else None  # noqa: SIM401 - ModuleDict
    if tower is not None and getattr(tower, "num_frames", None):
        return int(tower.num_frames)
    config_path = model_dir / "config.json"
    if tower is not None and config_path.is_file():
        seq = json.loads(config_path.read_text()).get("video_seq_length")
        if seq and seq % tower.tokens_per_frame == 0:
            return seq // tower.tokens_per_frame
    return DEFAULT_NUM_FRAMES


def load_session(
    model_dir: str | Path,
    template: str | ChatTemplate | None = None,
    *,
    num_frames: int | None = None,
    image_mode: Literal["crop", "pad"] = "pad",
    torch_dtype: str | torch.dtype | None = None,
    device: str | torch.device = "cpu",
) -> InferenceSession:
    """Load a checkpoint directory for inference.

    Args:
        model_dir: a checkpoint directory (lvlm, transformers ``video_llava`` or original layout) with its tokenizer.
        template: overrides the recorded chat template (``vicuna_v1``, ``llava_v1``, ``plain``); only needed
            when the checkpoint records none.
        num_frames: frames per video; by default the video tower's (8 when it does not say).
        image_mode: ``pad`` to square with the mean colour (the original's fine-tuning and eval) or ``crop``.
        torch_dtype: cast the model (``bfloat16`` on GPU; keep float32 on CPU).
        device: where the model runs.

    Raises:
        TemplateNotRecordedError: the checkpoint records no template and none was given.
        FileNotFoundError: no checkpoint or no tokenizer in ``model_dir``.
    """
    from lvlm.models.video_llava import VideoLLaVA

    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        raise FileNotFoundError(f"{model_dir}: no such checkpoint directory")
    model = VideoLLaVA.from_pretrained(model_dir, torch_dtype=torch_dtype).to(device).eval()
    name = template if template is not None else recorded_template(model_dir, model)
    if name is None:
        raise TemplateNotRecordedError(
            f"{model_dir} does not record its chat template; pass the one it was trained with "
            f"(--template vicuna_v1, llava_v1 or plain)"
        )
    chosen = get_template(name)
    recorded = recorded_template(model_dir, model)
    if template is not None and recorded is not None and chosen.name != recorded:
        log.warning("template %r overrides %r recorded with the checkpoint", chosen.name, recorded)
    try:
        tokenizer = load_tokenizer(model_dir)
    except (OSError, ValueError) as err:
        raise FileNotFoundError(
            f"{model_dir}: no tokenizer; save it with model.save_pretrained(dir, tokenizer=tok)"
        ) from err
    return InferenceSession(
        model=model,
        tokenizer=tokenizer,
        template=chosen,
        slots=media_slots(model, image_mode),
        num_frames=num_frames or video_frames(model_dir, model),
        image_mode=image_mode,
        max_length=int(getattr(model.llm.config, "max_position_embeddings", 4096)),
    )
