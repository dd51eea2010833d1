"""lvlm's own layout: ``lvlm_config.json`` (components as plain JSON) + ``model.safetensors`` (+ tokenizer)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from transformers.initialization import no_init_weights

from lvlm.models.checkpoints.weights import load_strict, read_state_dict, write_state_dict
from lvlm.models.language_model import LanguageModel
from lvlm.models.modality import Modality
from lvlm.models.projector import Projector
from lvlm.models.vision.base import VisionTower

CONFIG_NAME = "lvlm_config.json"


def save_lvlm(model, directory: Path) -> None:
    (directory / CONFIG_NAME).write_text(json.dumps(model.to_config(), indent=2))
    write_state_dict(model.state_dict(), directory)


def build_from_config(config: dict[str, Any], source: str):
    """The model described by an ``lvlm_config.json`` (random weights); towers come from the registry."""
    from lvlm.models.video_llava import VideoLLaVA

    towers = {}
    for name, spec in config["towers"].items():
        cls = VisionTower.registry.get(spec["type"])
        if cls is None:
            raise KeyError(
                f"{source}: tower {name!r} is of type {spec['type']!r}, which is not registered. Import the module "
                f"that defines it before loading (known: {sorted(VisionTower.registry)})."
            )
        towers[name] = cls(**spec["init_args"])
    projector = Projector(**config["projector"])
    llm = LanguageModel(config=config["llm"]["config"])
    modalities = [Modality(**m) for m in config["modalities"]]
    return VideoLLaVA(towers, projector, llm, modalities, config.get("chat_template"))


def load_lvlm(directory: Path, torch_dtype: torch.dtype | None = None):
    config = json.loads((directory / CONFIG_NAME).read_text())
    if config.get("format") != "lvlm":
        raise ValueError(f"{directory / CONFIG_NAME}: not an lvlm config (format={config.get('format')!r})")
    with no_init_weights():
        model = build_from_config(config, str(directory))
    load_strict(model, read_state_dict(directory), str(directory), dtype=torch_dtype)
    return model if torch_dtype is None else model.to(torch_dtype)
