"""Rebuild an ``LVLMModule`` from a run's saved settings (a checkpoint's hyper-parameters or its config.yaml).

Saved settings are files, so every value jsonargparse could import (a ``class_path``, a plain-string class path
in a class or callable field, YAML in an ``Any`` field) is vetted along ``LVLMModule``'s type hints
(:func:`lvlm.core.settings_vetting.vet_settings`) before jsonargparse sees it: only component classes of lvlm or
of a registered plugin are accepted, anything else (``os.system``, ``subprocess.Popen``, a module with
import-time effects) is refused naming the file and the key. Lightning's ``_instantiator``/``_class_path``
entries are dropped, never called. Settings that would choose where a run writes (``export``) or read other
files (``parts.projector_checkpoint``) are not taken from the file; the optimizer and schedule are not needed to
rebuild.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from jsonargparse import ArgumentParser

from lvlm.core.errors import UserError
from lvlm.core.settings_vetting import vet_settings
from lvlm.data.templates import ChatTemplate
from lvlm.modalities import Modality
from lvlm.models.language_model import LanguageModel
from lvlm.models.projector import Projector
from lvlm.models.vision.base import VisionTower
from lvlm.training.module import LVLMModule

COMPONENT_BASES = (VisionTower, Projector, LanguageModel, ChatTemplate, Modality)
NOT_FROM_FILES = {"optimisation": ("optimizer", "lr_scheduler"), "parts": ("projector_checkpoint",), "export": None}
"""Per group, the fields not taken from a file (None: the whole group)."""


def module_settings(saved: Mapping[str, Any], source: str) -> dict[str, Any]:
    """The vetted settings of a saved run, ready to rebuild its module."""
    settings = {k: copy.deepcopy(v) for k, v in saved.items() if not str(k).startswith("_")}
    for group, names in NOT_FROM_FILES.items():
        values = settings.get(group)
        if names is None:
            settings.pop(group, None)
        elif isinstance(values, dict):
            settings[group] = {k: v for k, v in values.items() if k not in names}
    vet_settings(settings, LVLMModule, COMPONENT_BASES, source)
    return settings


def rebuild_module(saved: Mapping[str, Any], source: str) -> LVLMModule:
    """An ``LVLMModule`` with the saved run's components (no weights yet: call ``configure_model``).

    Raises:
        UnsafeInputError: a class path outside lvlm's components.
        UserError: settings that do not fit ``LVLMModule``.
    """
    settings = module_settings(saved, source)
    parser = ArgumentParser(exit_on_error=False)
    parser.add_class_arguments(LVLMModule, "model")
    try:
        config = parser.parse_object({"model": settings})
    except Exception as error:  # jsonargparse reports every kind of mismatch as its own error types
        raise UserError(f"{source}: the saved settings do not describe an lvlm model ({error})") from error
    return parser.instantiate(config).model
