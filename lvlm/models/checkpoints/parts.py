"""What a checkpoint layout reader returns: the model's components and the weights to assign to them.

Readers never import ``VideoLLaVA``: :meth:`VideoLLaVA.from_pretrained` assembles the parts and assigns
``state`` (so the layouts and the model class do not import each other).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from lvlm.models.language_model import LanguageModel
from lvlm.models.modality import Modality
from lvlm.models.projector import Projector
from lvlm.models.vision.base import VisionTower


@dataclass
class ModelParts:
    """Components of a ``VideoLLaVA`` read from a checkpoint.

    Attributes:
        towers: one tower per modality name.
        projector: the shared projector.
        llm: the language model.
        modalities: the modality of each tower (bound, holding its ``token_id``), in tower order.
        chat_template: the recorded template (a name or ``{class_path, init_args}``), None when unrecorded.
        specs: data-side modality components by name (``{class_path, init_args}``), when recorded.
        state: lvlm-named weights to assign strictly; None when the components already hold their weights.
        source: where they came from (for messages).
        dtype: the dtype to cast to, or None.
    """

    towers: dict[str, VisionTower]
    projector: Projector
    llm: LanguageModel
    modalities: list[Modality]
    chat_template: Any = None
    specs: dict[str, Any] = field(default_factory=dict)
    state: dict[str, torch.Tensor] | None = None
    source: str = "checkpoint"
    dtype: torch.dtype | None = None
