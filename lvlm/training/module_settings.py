"""``LVLMModule``'s settings, in four typed groups a recipe overrides at any depth (``model.parts.modalities``,
``--model.optimisation.optimizer.lr 1e-4``): what the model is made of (:class:`ModelParts`), what learns and how
(:class:`Optimisation`), how it is sharded (:class:`Sharding`) and what the end of fit writes (:class:`Export`).
jsonargparse validates every field: a misspelt one fails when the recipe is parsed, naming it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from lvlm.data.templates import ChatTemplate
from lvlm.modalities import Modality
from lvlm.models.language_model import LanguageModel
from lvlm.models.projector import MLPGeluProjector, Projector
from lvlm.training.lora import LoRASettings
from lvlm.training.optim import OptimizerFactory, SchedulerFactory, WarmupCosineLR, default_optimizer
from lvlm.training.sharding import FSDPSettings


@dataclass
class ModelParts:
    """``model.parts``: the components, each named by class path with typed ``init_args``.

    Attributes:
        llm: the :class:`~lvlm.models.language_model.LanguageModel`.
        modalities: one :class:`~lvlm.modalities.Modality` per key (``image``, ``video``, a plugin's ``depth``),
            each naming its tower; the key is the modality's name. ``null`` drops one a base recipe has (the
            image-only and video-only ablations).
        projector: the projector class shared by all towers; ``in_features``/``out_features`` are filled in.
        tokenizer: tokenizer directory or hub id; defaults to the LLM's ``pretrained``.
        chat_template: the template of the data, recorded in exported models (``lvlm.data.templates.VicunaV1``).
        projector_checkpoint: stage-1 ``projector.safetensors`` (or the original ``mm_projector.bin``) to start from.
    """

    llm: Callable[[], LanguageModel]
    modalities: dict[str, Modality | None]
    projector: Callable[[int, int], Projector] = MLPGeluProjector
    tokenizer: str | None = None
    chat_template: ChatTemplate | None = None
    projector_checkpoint: str | None = None


@dataclass
class Optimisation:
    """``model.optimisation``: what learns (:class:`~lvlm.training.trainability.Trainability`) and how.

    Attributes:
        train_projector, train_llm, train_vision: which parts learn.
        lora: LoRA adapters on the LLM only (``r``, ``alpha``, ``dropout``, ``target_modules``); null for none.
        optimizer: any ``torch.optim`` optimizer (``--model.optimisation.optimizer torch.optim.SGD
            --model.optimisation.optimizer.lr 0.1``); default AdamW lr 1e-3, no weight decay. Biases and norm
            weights get no weight decay.
        lr_scheduler: called with the optimizer (and ``total_steps`` when it takes it); stepped per optimizer step.
        projector_lr: a learning rate of its own for the projector (the LoRA recipe's 2e-5).
    """

    train_projector: bool = True
    train_llm: bool = False
    train_vision: bool = False
    lora: LoRASettings | None = None
    optimizer: OptimizerFactory = default_optimizer
    lr_scheduler: SchedulerFactory = WarmupCosineLR
    projector_lr: float | None = None


@dataclass
class Sharding:
    """``model.sharding``: memory and sharding.

    Attributes:
        fsdp: FSDP2 mixed precision and resharding, used under ``ModelParallelStrategy``.
        activation_checkpointing: recompute LLM decoder layers in backward.
    """

    fsdp: FSDPSettings = field(default_factory=FSDPSettings)
    activation_checkpointing: bool = False


@dataclass
class Export:
    """``model.export``: what the end of fit writes.

    Attributes:
        dir: write the final model + tokenizer there as an lvlm checkpoint.
        projector: where to write the projector (default: ``<run dir>/projector.safetensors`` whenever the projector
            trained).
        overwrite: replace an existing non-empty ``dir`` / ``projector`` (whole, once the new export is complete);
            without it such a run is refused before training starts.
    """

    dir: str | None = None
    projector: str | None = None
    overwrite: bool = False
