"""How a model saw media in training, recorded with it and read back by every entry point through one function.

A model trained on 4 frames per video and asked 8 at inference, or trained on cropped images and shown padded
ones, answers worse and says nothing. So the training run records, per modality, what its data side used: the
frames per item of a frame-based modality (the data module's ``num_frames``), the tower input the transforms
produced (``preprocessing``: size, mean, std) and the modality's own arguments (``image_mode``...), which
``Modality.to_spec`` already records. The record lives in the model's ``modality_specs`` (``lvlm_config.json``),
under each modality's ``seen`` key, and in run checkpoints (``lvlm_media``), so ``lvlm convert`` and
``lvlm merge-lora`` carry it over.

:func:`apply_media_record` is the one reader: ``load_session`` (chat, predict, ``eval --model``, serve, the
lmms-eval adapter) takes frames, image mode and preprocessing from it. An explicit override that differs from
what training used is applied and warned about once.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import asdict, fields, replace
from typing import Any

from lvlm.core.specs import spec_of
from lvlm.models.modality import Modality, TowerFacts

log = logging.getLogger(__name__)

SEEN = "seen"
CHECKPOINT_KEY = "lvlm_media"
DEFAULT_NUM_FRAMES = 8
_warned: set[tuple[str, str, Any, Any]] = set()


def media_seen(modalities: Mapping[str, Modality], num_frames: int | None) -> dict[str, dict[str, Any]]:
    """Per modality, what the data side fed its tower: ``{"preprocessing": {...}, "num_frames": t}`` (frames only
    for frame-based modalities; ``num_frames`` None takes the tower's own count)."""
    record: dict[str, dict[str, Any]] = {}
    for name, modality in modalities.items():
        facts = modality.tower_facts
        entry: dict[str, Any] = {"preprocessing": spec_of(asdict(facts.preprocessing))}
        frames = num_frames or facts.num_frames
        if modality.uses_frames and frames:
            entry["num_frames"] = int(frames)
        record[name] = entry
    return record


def with_seen(specs: Mapping[str, Any], seen: Mapping[str, Any] | None) -> dict[str, Any]:
    """``modality_specs`` with each modality's ``seen`` record added (specs without one are left as they are)."""
    out = {name: dict(spec) if isinstance(spec, Mapping) else spec for name, spec in specs.items()}
    for name, record in (seen or {}).items():
        if isinstance(out.get(name), dict):
            out[name][SEEN] = dict(record)
    return out


def recorded_seen(specs: Mapping[str, Any] | None) -> dict[str, dict[str, Any]]:
    """The ``seen`` records of a loaded model's ``modality_specs`` (empty for models that record none)."""
    found = {}
    for name, spec in (specs or {}).items():
        record = spec.get(SEEN) if isinstance(spec, Mapping) else None
        if isinstance(record, Mapping):
            found[name] = dict(record)
    return found


def apply_media_record(
    modalities: Mapping[str, Modality],
    seen: Mapping[str, Mapping[str, Any]],
    *,
    fallback_frames: int | None = None,
    num_frames: int | None = None,
    image_mode: str | None = None,
    where: str = "model",
) -> int:
    """Apply what training used (``seen``) to a loaded model's modalities, then the explicit overrides; returns
    the frames per item of frame-based modalities.

    Args:
        modalities: the loaded model's modalities (their preprocessing is set to the recorded one).
        seen: :func:`recorded_seen` of the model.
        fallback_frames: frames for models that record none (transformers' ``video_seq_length``...).
        num_frames: an explicit frame count (``--num-frames``); warned once when it differs from training's.
        image_mode: an explicit image mode (``--image-mode``) for every modality that has one; warned likewise.
        where: the model, for the warnings.
    """
    for name, modality in modalities.items():
        recorded = (seen.get(name) or {}).get("preprocessing")
        if isinstance(recorded, Mapping):
            _use_preprocessing(modality, recorded)
        if image_mode is not None and hasattr(modality, "image_mode"):
            _warn_override(where, f"{name} image_mode", modality.image_mode, image_mode)
            modality.image_mode = image_mode
    framed = [name for name, m in modalities.items() if m.uses_frames]
    trained = next((seen[name]["num_frames"] for name in framed if (seen.get(name) or {}).get("num_frames")), None)
    if trained is None and framed:
        trained = modalities[framed[0]].tower_facts.num_frames or fallback_frames
    if num_frames is not None and trained is not None:
        _warn_override(where, "num_frames", trained, num_frames)
    return int(num_frames or trained or DEFAULT_NUM_FRAMES)


def _use_preprocessing(modality: Modality, recorded: Mapping[str, Any]) -> None:
    facts: TowerFacts = modality.tower_facts
    current = facts.preprocessing
    known = {f.name for f in fields(current)}
    values = {k: tuple(v) if isinstance(v, list) else v for k, v in recorded.items() if k in known}
    wanted = replace(current, **values)
    if wanted != current:
        modality.__dict__["tower_facts"] = replace(facts, preprocessing=wanted)


def _warn_override(where: str, setting: str, trained: Any, given: Any) -> None:
    key = (where, setting, trained, given)
    if trained == given or key in _warned:
        return
    _warned.add(key)
    log.warning("%s: %s %r overrides the %r the model was trained with", where, setting, given, trained)
