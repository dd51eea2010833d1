"""One shared projector needs one tower width: the check, with an error a user can act on.

Every modality's features go through the same projector (Video-LLaVA's design: towers aligned to language
before one shared projection), so every tower must return features of one width ``d``.
"""

from __future__ import annotations

from collections.abc import Mapping

from lvlm.core.errors import UserError
from lvlm.models.vision.base import VisionTower


class TowerWidthError(UserError, ValueError):
    """Towers of different widths where one shared projector needs one."""


def shared_width(towers: Mapping[str, VisionTower], projector_width: int | None = None) -> int:
    """The width all ``towers`` share, checked against ``projector_width`` (the projector's input) when given.

    Raises:
        TowerWidthError: one line naming two modalities that differ, their tower classes and widths (or a
            tower and the projector).
    """
    named = [(name, type(tower).__name__, tower.hidden_size) for name, tower in towers.items()]
    if not named:
        raise ValueError("a model needs at least one tower")
    first = named[0]
    for other in named[1:]:
        if other[2] != first[2]:
            raise TowerWidthError(
                f"towers differ in width: {_describe(first)}, {_describe(other)}; all towers share one projector, "
                "so they need one width (a tower's hidden_size): change one of them"
            )
    if projector_width is not None and projector_width != first[2]:
        raise TowerWidthError(
            f"tower width {first[2]} does not fit the shared projector, which takes {projector_width}: "
            f"{', '.join(map(_describe, named))}"
        )
    return first[2]


def _describe(entry: tuple[str, str, int]) -> str:
    name, tower, width = entry
    return f"{name!r} ({tower}) is {width} wide"
