"""The modalities of a loaded model, ready to decode: one derivation for training and serving.

A model saved by lvlm holds the modality components it was trained with (rebuilt from its ``modality_specs`` by
:mod:`lvlm.models.recorded_modality`). A layout that records none (transformers' ``video_llava``, the original's,
a model built from bare towers) holds :class:`~lvlm.models.recorded_modality.TowerModality` objects, which know
their tower and placeholder but not how to decode: each is replaced, in the model too, by the built-in modality
of its name, images padded to square as the original's fine-tuning and evaluation do.
"""

from __future__ import annotations

from typing import Any

from lvlm.core.errors import UserError
from lvlm.modalities.catalog import BUILT_IN
from lvlm.models.modality import Modality
from lvlm.models.recorded_modality import TowerModality, recorded_modality
from lvlm.models.video_llava import VideoLLaVA

# The original checkpoints were fine-tuned and evaluated with images padded to square.
UNRECORDED_INIT_ARGS: dict[str, dict[str, Any]] = {"image": {"image_mode": "pad"}}


def saved_modalities(model: VideoLLaVA, where: str) -> dict[str, Modality]:
    """The loaded model's modalities by name, each able to decode its media (the model holds the same objects).

    Args:
        model: the loaded model.
        where: the file it was read from, for errors (``ckpt/lvlm_config.json``).

    Raises:
        UserError: a layout that records no modality class has a modality lvlm has no built-in class for.
    """
    for name, modality in model.modalities.items():
        if not isinstance(modality, TowerModality):
            continue
        if name not in BUILT_IN:
            raise UserError(f"{where}: modality {name!r} records no class path and is not built in")
        model.modalities[name] = recorded_modality(
            name, model.towers[name], modality.token, modality.token_id, BUILT_IN[name], UNRECORDED_INIT_ARGS.get(name)
        )
    return dict(model.modalities)
