"""lvlm's own layout: ``lvlm_config.json`` (components by class path + typed arguments) + ``model.safetensors``.

Format version 2 records each component as ``{class_path, init_args}``; reading resolves every class path
through :func:`lvlm.core.registry.resolve_component`, so a file can only name component classes of lvlm or of a
registered plugin. Version 1 (tower ``type`` names, projector ``kind``) is still read.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import torch
from transformers.initialization import no_init_weights

from lvlm.core.errors import UserError
from lvlm.core.registry import class_path_of, recorded_class, resolve_component
from lvlm.models.checkpoints.parts import ModelParts
from lvlm.models.io.weights import read_state_dict, write_state_dict
from lvlm.models.language_model import LanguageModel
from lvlm.models.modality import Modality
from lvlm.models.projector import Projector, projector_from_kind
from lvlm.models.recorded_modality import TowerModality, recorded_modality, spec_class
from lvlm.models.vision.base import VisionTower

CONFIG_NAME = "lvlm_config.json"
FORMAT_VERSION = 2
# Format 1 named lvlm's towers by short registry names.
_V1_TOWERS = {
    "clip": "lvlm.models.vision.clip_tower.CLIPVisionTower",
    "languagebind_image": "lvlm.models.vision.clip_tower.LanguageBindImageTower",
    "languagebind_video": "lvlm.models.vision.clip_tower.LanguageBindVideoTower",
    "timm": "lvlm.models.vision.timm_tower.TimmVisionTower",
}


def component_spec(component: Any) -> dict[str, Any]:
    """``{class_path, init_args}`` of a tower, projector or LLM (what rebuilds it without weights)."""
    return {"class_path": class_path_of(recorded_class(type(component))), "init_args": component.to_config()}


def model_config(
    towers: Mapping[str, VisionTower],
    projector: Projector,
    llm: LanguageModel,
    modalities: Iterable[Modality],
    chat_template: Any,
    specs: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The ``lvlm_config.json`` of a model's components."""
    return {
        "format": "lvlm",
        "format_version": FORMAT_VERSION,
        "towers": {name: component_spec(tower) for name, tower in towers.items()},
        "projector": component_spec(projector),
        "llm": component_spec(llm),
        "modalities": [
            {"name": m.name, "token": m.token, "token_id": m.token_id, "input_name": m.input_name} for m in modalities
        ],
        "chat_template": chat_template,
        "modality_specs": dict(specs or {}),
    }


def save_lvlm(model, directory: Path) -> None:
    (directory / CONFIG_NAME).write_text(json.dumps(model.to_config(), indent=2))
    write_state_dict(model.state_dict(), directory)


def _build(spec: Mapping[str, Any], base: type, where: str) -> Any:
    if not isinstance(spec, Mapping) or not isinstance(spec.get("init_args", {}), Mapping):
        raise UserError(f"{where}: expected {{class_path, init_args}}, got {spec!r}")
    cls = resolve_component(spec.get("class_path"), base, f"{where}.class_path")
    return cls(**dict(spec.get("init_args") or {}))


def _v1_specs(config: dict[str, Any]) -> dict[str, Any]:
    """A format-1 config in format-2 terms."""
    towers = {
        name: {"class_path": _V1_TOWERS.get(spec["type"], spec["type"]), "init_args": spec["init_args"]}
        for name, spec in config["towers"].items()
    }
    return config | {"towers": towers, "llm": {"class_path": class_path_of(LanguageModel), "init_args": config["llm"]}}


def read_lvlm(directory: Path, torch_dtype: torch.dtype | None = None) -> ModelParts:
    """Components described by ``lvlm_config.json`` (random weights) and the directory's weights."""
    source = directory / CONFIG_NAME
    config = json.loads(source.read_text())
    if not isinstance(config, dict) or config.get("format") != "lvlm":
        raise UserError(f"{source}: not an lvlm config (format={config.get('format')!r})")
    version = config.get("format_version", 1)
    if version == 1:
        config = _v1_specs(config)
    elif version != FORMAT_VERSION:
        raise UserError(f"{source}: format_version {version} is newer than this lvlm reads ({FORMAT_VERSION})")
    with no_init_weights():
        towers = {
            name: _build(spec, VisionTower, f"{source}: towers.{name}") for name, spec in config["towers"].items()
        }
        llm = _build(config["llm"], LanguageModel, f"{source}: llm")
        if version == 1:
            spec = config["projector"]
            projector = projector_from_kind(spec["kind"], spec["in_features"], spec["out_features"])
        else:
            projector = _build(config["projector"], Projector, f"{source}: projector")
    return ModelParts(
        towers=towers,
        projector=projector,
        llm=llm,
        modalities=_modalities(config, towers, source),
        chat_template=config.get("chat_template"),
        specs=dict(config.get("modality_specs") or {}),
        state=read_state_dict(directory),
        source=str(directory),
        dtype=torch_dtype,
    )


def _modalities(config: Mapping[str, Any], towers: Mapping[str, VisionTower], source: Path) -> list[Modality]:
    """The recorded bindings (``modalities``: name, token, token_id, input_name) with their recorded components."""
    specs = config.get("modality_specs") or {}
    found = []
    for index, record in enumerate(config["modalities"]):
        where = f"{source}: modalities[{index}]"
        name = record.get("name") if isinstance(record, Mapping) else None
        if name not in towers:
            raise UserError(f"{where}: modality {name!r} has no tower; towers: {sorted(towers)}")
        spec = specs.get(name)
        cls, init_args = (
            (TowerModality, {}) if spec is None else spec_class(spec, f"{source}: modality_specs.{name}.class_path")
        )
        modality = recorded_modality(name, towers[name], record["token"], record["token_id"], cls, init_args)
        if record.get("input_name", modality.input_name) != modality.input_name:
            raise UserError(
                f"{where}: input_name {record['input_name']!r} is not {modality.input_name!r} (the name's plural)"
            )
        found.append(modality)
    return found
