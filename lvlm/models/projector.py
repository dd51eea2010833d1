"""The projector shared by every visual modality: any module mapping tower width to LLM width.

Built in: :class:`MLPGeluProjector` (``mlp{N}x_gelu``: ``Linear(d_vision → d_llm)`` then ``N-1`` times
``GELU (exact erf), Linear(d_llm → d_llm)``, parameter indices 0, 2, ... as the original's ``mm_projector``),
:class:`LinearProjector` and :class:`IdentityProjector`. A recipe names one by class path; its first
two arguments (``in_features``, ``out_features``) are filled in from the towers and the LLM.

Legend: ``d_vision`` tower width, ``d_llm`` LLM width.
"""

from __future__ import annotations

import re
from typing import Any

from torch import nn

_MLP_KIND = re.compile(r"^mlp(\d+)x_gelu$")


class Projector(nn.Module):
    """Base of projectors: maps ``[..., d_vision]`` to ``[..., d_llm]``.

    Subclasses take ``in_features`` and ``out_features`` first and return the rest of their arguments from
    :meth:`extra_config` so that a saved model rebuilds them.
    """

    in_features: int
    out_features: int

    def extra_config(self) -> dict[str, Any]:
        """Constructor arguments beyond ``in_features``/``out_features``."""
        return {}

    def to_config(self) -> dict[str, Any]:
        return {"in_features": self.in_features, "out_features": self.out_features} | self.extra_config()


class MLPGeluProjector(nn.Sequential, Projector):
    """``depth`` linear layers with exact GELU between (``mlp2x_gelu`` is depth 2, Video-LLaVA's)."""

    def __init__(self, in_features: int = 1024, out_features: int = 4096, depth: int = 2) -> None:
        if depth < 1:
            raise ValueError(f"an MLP projector needs depth >= 1, got {depth}")
        layers: list[nn.Module] = [nn.Linear(in_features, out_features)]
        for _ in range(depth - 1):
            layers += [nn.GELU(), nn.Linear(out_features, out_features)]
        super().__init__(*layers)
        self.in_features, self.out_features, self.depth = in_features, out_features, depth

    def extra_config(self) -> dict[str, Any]:
        return {"depth": self.depth}


class LinearProjector(nn.Sequential, Projector):
    """One linear layer (LLaVA-1's projector); parameters at index 0 like the MLP's first layer."""

    def __init__(self, in_features: int = 1024, out_features: int = 4096) -> None:
        super().__init__(nn.Linear(in_features, out_features))
        self.in_features, self.out_features = in_features, out_features


class IdentityProjector(nn.Sequential, Projector):
    """No projection: towers already at the LLM's width."""

    def __init__(self, in_features: int = 4096, out_features: int = 4096) -> None:
        if in_features != out_features:
            raise ValueError(f"identity projector needs equal widths, got {in_features} → {out_features}")
        super().__init__()
        self.in_features, self.out_features = in_features, out_features


def projector_from_kind(kind: str, in_features: int, out_features: int) -> Projector:
    """The projector an original-layout config names by ``mm_projector_type`` (``mlp2x_gelu``, ``linear``,
    ``identity``): parsing that external format, not how lvlm chooses components."""
    if kind == "linear":
        return LinearProjector(in_features, out_features)
    if kind == "identity":
        return IdentityProjector(in_features, out_features)
    match = _MLP_KIND.match(kind)
    if match is None:
        raise ValueError(f"unknown mm_projector_type {kind!r}: expected 'mlp{{N}}x_gelu', 'linear' or 'identity'")
    return MLPGeluProjector(in_features, out_features, depth=int(match.group(1)))
