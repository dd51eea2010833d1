"""A loaded checkpoint ready to answer: model, tokenizer, chat template, its modalities and their transforms.

The chat template comes from the checkpoint. The original CLI guessed it from the model's *name* and fell to
``llava_v0`` for "Video-LLaVA-7B"; a wrong template gives fluent but degraded answers and no error.
So lvlm never guesses: a checkpoint that records no template is an error until ``template=`` says which.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch
from transformers import PreTrainedTokenizerBase

from lvlm.data.templates import ChatTemplate, get_template
from lvlm.modalities import Modality
from lvlm.modalities.media_record import DEFAULT_NUM_FRAMES, apply_media_record, recorded_seen
from lvlm.modalities.saved import saved_modalities
from lvlm.models.io.tokenizer import load_tokenizer

log = logging.getLogger(__name__)

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
        modalities: the model's modalities by name (placeholder, decoding, transform, token counts), rebuilt
            from what the checkpoint records (:func:`lvlm.modalities.saved.saved_modalities`).
        num_frames: frames sampled from every item of a frame-based modality (video).
        max_length: the LLM's ``max_position_embeddings``: prompt plus answer must fit.
    """

    model: torch.nn.Module
    tokenizer: PreTrainedTokenizerBase
    template: ChatTemplate
    modalities: dict[str, Modality]
    num_frames: int = DEFAULT_NUM_FRAMES
    max_length: int = 4096
    _transforms: dict[str, Callable[[Any], torch.Tensor]] = field(default_factory=dict, repr=False)

    def modality(self, kind: str) -> Modality:
        """The modality named ``kind`` (``image``, ``video``, a plugin's ``depth``)."""
        if kind not in self.modalities:
            raise ValueError(f"this model has no {kind!r} modality; it takes {sorted(self.modalities)}")
        return self.modalities[kind]

    def transform(self, kind: str) -> Callable[[Any], torch.Tensor]:
        """The deterministic (no augmentation) transform of a modality, built from its tower."""
        if kind not in self._transforms:
            self._transforms[kind] = self.modality(kind).make_transform()
        return self._transforms[kind]

    def load(self, kind: str, source: bytes | str | os.PathLike | list[bytes], key: str = "?") -> torch.Tensor:
        """Decode and transform one item of a modality (a file, its bytes, or its frames)."""
        modality = self.modality(kind)
        return modality.load(source, key=key, num_frames=self.num_frames, transform=self.transform(kind))

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device


def recorded_template(model_dir: Path, model: torch.nn.Module) -> str | dict[str, Any] | None:
    """The template name the checkpoint records, or None when it records none.

    An lvlm checkpoint records it in ``lvlm_config.json``; transformers' and the original layouts are loaded
    with ``llava_v1``, the template of the original's video evaluation and demo.
    """
    config_path = model_dir / LVLM_CONFIG
    if config_path.is_file():
        return json.loads(config_path.read_text()).get("chat_template")
    return getattr(model, "chat_template", None)


def sequence_frames(model_dir: Path, modalities: dict[str, Modality]) -> int | None:
    """Frames per video of a transformers layout (``video_seq_length`` over the tower's tokens per frame), for
    models that record no frame count of their own."""
    framed = [m for m in modalities.values() if m.uses_frames]
    config_path = model_dir / "config.json"
    if not framed or not config_path.is_file():
        return None
    seq = json.loads(config_path.read_text()).get("video_seq_length")
    per_frame = framed[0].tower_facts.tokens_per_frame
    return seq // per_frame if seq and per_frame and seq % per_frame == 0 else None


def load_session(
    model_dir: str | Path,
    template: str | ChatTemplate | None = None,
    *,
    num_frames: int | None = None,
    image_mode: Literal["crop", "pad"] | None = None,
    torch_dtype: str | torch.dtype | None = None,
    device: str | torch.device = "cpu",
) -> InferenceSession:
    """Load a checkpoint directory for inference.

    Args:
        model_dir: a checkpoint directory (lvlm, transformers ``video_llava`` or original layout) with its tokenizer.
        template: overrides the recorded chat template (``vicuna_v1``, ``llava_v1``, ``plain``); only needed
            when the checkpoint records none.
        num_frames: frames per video; by default what training used (recorded with the model), else the video
            tower's, else 8. A different explicit value is used and warned about once.
        image_mode: overrides the recorded ``image_mode`` of every modality that has one: ``pad`` to square
            with the mean colour (the original's fine-tuning and eval) or ``crop``. None keeps what the model
            records (``pad`` for layouts that record none); a different explicit value is warned about once.
        torch_dtype: cast the model (``bfloat16`` on GPU; keep float32 on CPU).
        device: where the model runs.

    Raises:
        TemplateNotRecordedError: the checkpoint records no template and none was given.
        FileNotFoundError: no checkpoint or no tokenizer in ``model_dir``.
    """
    model_dir = Path(model_dir)
    model = _load_model(model_dir, torch_dtype, device)
    chosen = chosen_template(model_dir, model, template)
    tokenizer = _session_tokenizer(model_dir)
    modalities = saved_modalities(model, str(model_dir / LVLM_CONFIG))
    frames = apply_media_record(
        modalities,
        recorded_seen(getattr(model, "modality_specs", None)),
        fallback_frames=sequence_frames(model_dir, modalities),
        num_frames=num_frames,
        image_mode=image_mode,
        where=str(model_dir),
    )
    return InferenceSession(
        model=model,
        tokenizer=tokenizer,
        template=chosen,
        modalities=modalities,
        num_frames=frames,
        max_length=int(getattr(model.llm.config, "max_position_embeddings", 4096)),
    )


def _load_model(model_dir: Path, torch_dtype: str | torch.dtype | None, device: str | torch.device) -> torch.nn.Module:
    """The checkpoint's model on ``device``, in eval mode."""
    from lvlm.models.video_llava import VideoLLaVA

    if not model_dir.is_dir():
        raise FileNotFoundError(f"{model_dir}: no such checkpoint directory")
    return VideoLLaVA.from_pretrained(model_dir, dtype=torch_dtype).to(device).eval()


def chosen_template(model_dir: Path, model: torch.nn.Module, template: str | ChatTemplate | None) -> ChatTemplate:
    """The chat template to use: ``template`` if given (warned about when it differs from the recorded one), else
    the one the checkpoint records.

    Raises:
        TemplateNotRecordedError: the checkpoint records no template and none was given.
    """
    recorded = recorded_template(model_dir, model)
    name = template if template is not None else recorded
    if name is None:
        raise TemplateNotRecordedError(
            f"{model_dir} does not record its chat template; pass the one it was trained with "
            f"(--template vicuna_v1, llava_v1 or plain)"
        )
    where = f"{model_dir / LVLM_CONFIG}: chat_template"
    chosen = get_template(name, where)
    if template is not None and recorded is not None and chosen != get_template(recorded, where):
        log.warning(
            "template %r overrides %r recorded with the checkpoint", chosen.name, get_template(recorded, where).name
        )
    return chosen


def _session_tokenizer(model_dir: Path) -> PreTrainedTokenizerBase:
    """The tokenizer saved with the checkpoint."""
    try:
        return load_tokenizer(model_dir)
    except (OSError, ValueError) as err:
        raise FileNotFoundError(
            f"{model_dir}: no tokenizer; save it with model.save_pretrained(dir, tokenizer=tok)"
        ) from err
