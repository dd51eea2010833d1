"""The modalities installed: the built-in image and video, and every one a plugin registers (``lvlm.modalities``).

``lvlm shards`` uses them without towers (writing members needs none): each is built with ``tower=None`` and
named by its entry-point name.
"""

from __future__ import annotations

from collections.abc import Iterable

from lvlm.core.registry import plugin_entry_points, resolve_component
from lvlm.modalities.image import ImageModality
from lvlm.modalities.video import VideoModality
from lvlm.models.modality import Modality
from lvlm.models.recorded_modality import TowerModality

GROUP = "lvlm.modalities"
BUILT_IN: dict[str, type[Modality]] = {"image": ImageModality, "video": VideoModality}


def installed_modality_classes() -> dict[str, type[Modality]]:
    """Modality classes by name: built-in first, then registered plugins (a plugin may not replace a built-in)."""
    found = dict(BUILT_IN)
    for entry in plugin_entry_points():
        if entry.group == GROUP and entry.name not in found:
            found[entry.name] = resolve_component(entry.name, Modality, f"entry point {entry.value}", GROUP)
    return found


def installed_modality_names() -> list[str]:
    """Names of the installed modalities (built-in, then registered), without importing any plugin."""
    names = list(BUILT_IN)
    names += [ep.name for ep in plugin_entry_points() if ep.group == GROUP and ep.name not in names]
    return names


def in_marker_order(names: Iterable[str]) -> list[str]:
    """Modality names sorted as lvlm places their markers before a question (``marker_rank``; unknown last)."""
    classes = installed_modality_classes()
    return sorted(names, key=lambda name: classes[name].marker_rank if name in classes else Modality.marker_rank)


def installed_modalities() -> list[Modality]:
    """One tower-less instance of every installed modality, bound to its name (for writing shards)."""
    return [cls(tower=None).bind(name) for name, cls in installed_modality_classes().items()]


def unbound_modality(name: str) -> Modality:
    """A tower-less modality named ``name`` (its default placeholder ``<name>``): for what is read before any model
    is at hand (question files, requests); the installed class of that name, else a
    :class:`~lvlm.models.recorded_modality.TowerModality`."""
    return installed_modality_classes().get(name, TowerModality)(tower=None).bind(name)
