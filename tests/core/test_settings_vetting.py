"""`vet_settings`: every value jsonargparse could import is vetted by the registry rule along the owner's hints."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from lvlm.core.errors import UnsafeInputError
from lvlm.core.settings_vetting import vet_settings
from lvlm.models.projector import MLPGeluProjector, Projector
from lvlm.models.vision.base import VisionTower


@dataclass
class Inner:
    name: str = "x"
    factory: Callable[[], Projector] | None = None


@dataclass
class Owner:
    projector: Callable[[int, int], Projector] = MLPGeluProjector
    path: str = ""
    anything: Any = None
    mapping: dict[str, Any] = field(default_factory=dict)
    towers: dict[str, VisionTower | None] = field(default_factory=dict)
    inner: Inner = field(default_factory=Inner)
    items: list[Any] = field(default_factory=list)


BASES = (Projector, VisionTower)
BENIGN = {
    "projector": "lvlm.models.projector.LinearProjector",  # an lvlm class as a plain string
    "path": "calendar.Calendar",  # a `str` field: jsonargparse keeps strings there
    "anything": "calendar.Calendar",  # a string in an Any field is only a string
    "mapping": {"k": "os.system", "n": 3, "nested": {"k": [1, "subprocess.Popen"]}},
    "towers": {"image": {"class_path": "lvlm.models.vision.clip_tower.CLIPVisionTower", "init_args": {"config": {}}}},
    "inner": {"name": "os.system", "factory": {"class_path": "lvlm.models.projector.IdentityProjector"}},
    "items": ["a", 1, {"k": "v"}],
}


def test_benign_settings_pass():
    vet_settings(BENIGN, Owner, BASES, "run.ckpt: hyper_parameters")


@pytest.mark.parametrize(
    ("key", "value", "where"),
    [
        ("projector", "calendar.Calendar", "projector"),  # a plain string in a callable field
        ("projector", {"class_path": "calendar.Calendar"}, "projector.class_path"),
        ("projector", "lvlm.models.vision.clip_tower.CLIPVisionTower", "projector"),  # lvlm, but not a projector
        ("anything", "{class_path: calendar.Calendar}", "anything.class_path"),  # YAML in an Any field
        ("anything", {"class_path": "calendar.Calendar"}, "anything.class_path"),
        ("mapping", {"k": {"class_path": "calendar.Calendar"}}, "mapping.k.class_path"),
        ("mapping", {"k": "[{class_path: calendar.Calendar}]"}, r"mapping.k\[0\].class_path"),
        ("towers", {"image": "calendar.Calendar"}, "towers.image"),
        (
            "towers",
            {
                "image": {
                    "class_path": "lvlm.models.vision.clip_tower.CLIPVisionTower",
                    "init_args": {"config": {"x": {"class_path": "calendar.Calendar"}}},
                }
            },
            "towers.image.init_args.config.x.class_path",
        ),  # fmt: skip
        ("inner", {"factory": "calendar.Calendar"}, "inner.factory"),
        ("inner", "calendar.Calendar", "inner"),  # a dataclass field given a class path
        ("items", ["{class_path: calendar.Calendar}"], r"items\[0\].class_path"),
    ],
)
def test_values_jsonargparse_would_import_are_refused_naming_the_key(key, value, where):
    with pytest.raises(UnsafeInputError, match=rf"run.ckpt: hyper_parameters.{where}: .*refused"):
        vet_settings(BENIGN | {key: value}, Owner, BASES, "run.ckpt: hyper_parameters")


def test_lightning_entries_are_left_alone():
    vet_settings({"_instantiator": "os.system", "_class_path": "os.system"}, Owner, BASES, "x")


def _module_settings() -> dict[str, Any]:
    tower = {"class_path": "lvlm.models.vision.clip_tower.CLIPVisionTower", "init_args": {"config": {}}}
    return {
        "parts": {
            "llm": {"class_path": "lvlm.models.language_model.LanguageModel", "init_args": {"config": {}}},
            "modalities": {"image": {"class_path": "lvlm.modalities.ImageModality", "init_args": {"tower": tower}}},
            "projector": "lvlm.models.projector.MLPGeluProjector",
        },
        "optimisation": {"train_llm": True, "lora": {"r": 4}},
        "sharding": {"fsdp": {"mixed_precision": None}, "activation_checkpointing": True},
        "export": {"dir": "os.system"},  # a `str` field: a string, never imported
    }


@pytest.mark.parametrize(
    ("group", "path", "payload", "where"),
    [
        ("parts", ("projector",), "os.system", "parts.projector"),
        ("parts", ("llm", "class_path"), "subprocess.Popen", "parts.llm.class_path"),
        (
            "parts",
            ("modalities", "image", "init_args", "tower", "class_path"),
            "os.system",
            "parts.modalities.image.init_args.tower.class_path",
        ),
        ("optimisation", ("lr_scheduler",), {"class_path": "subprocess.Popen"}, "optimisation.lr_scheduler.class_path"),
        ("sharding", ("fsdp", "mixed_precision"), {"class_path": "os.system"}, "sharding.fsdp.mixed_precision"),
    ],
)
def test_payloads_nested_inside_the_module_setting_groups_are_refused(group, path, payload, where):
    from lvlm.training.module import LVLMModule
    from lvlm.training.rebuild import COMPONENT_BASES

    vet_settings(_module_settings(), LVLMModule, COMPONENT_BASES, "run.ckpt: hyper_parameters")
    settings = _module_settings()
    node = settings[group]
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = payload
    with pytest.raises(UnsafeInputError, match=re.escape(f"hyper_parameters.{where}")):
        vet_settings(settings, LVLMModule, COMPONENT_BASES, "run.ckpt: hyper_parameters")
