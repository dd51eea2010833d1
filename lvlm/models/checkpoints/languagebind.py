"""Standalone LanguageBind tower directories (``LanguageBind_Image``, ``LanguageBind_Video_merge``).

The towers read such directories themselves (``LanguageBindImageTower(pretrained=DIR)``); this module keeps
the two entry points the original layout and scripts use.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lvlm.models.vision import pretrained_dirs
from lvlm.models.vision.clip_tower import LanguageBindImageTower, LanguageBindVideoTower

LANGUAGEBIND_TYPES = set(pretrained_dirs.LANGUAGEBIND_TYPES)


def load_languagebind_tower(path_or_hub_id: str | Path, modality: str | None = None, **tower_kwargs: Any):
    """A LanguageBind image or video tower, weights included, from its own directory or hub id.

    Args:
        path_or_hub_id: e.g. ``LanguageBind/LanguageBind_Video_merge`` or a local copy of it.
        modality: ``image`` or ``video``; read from the config's ``model_type`` when not given.
        tower_kwargs: ``select_layer``, ``select_feature``, ... for the tower.
    """
    if modality is None:
        directory, config = pretrained_dirs.read_config(path_or_hub_id)
        modality = pretrained_dirs.languagebind_modality(directory, config)
    cls = LanguageBindImageTower if modality == "image" else LanguageBindVideoTower
    return cls(pretrained=str(path_or_hub_id), **tower_kwargs)


def build_languagebind_tower(modality: str, vision: dict[str, Any], **tower_kwargs: Any):
    """An empty LanguageBind tower of ``modality`` from a LanguageBind ``vision_config`` dict."""
    if modality == "image":
        return LanguageBindImageTower(vision, **tower_kwargs)
    return LanguageBindVideoTower(vision, **tower_kwargs)
