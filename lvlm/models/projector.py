"""The projector shared by every visual modality: ``mlp{N}x_gelu``, ``linear`` or ``identity``.

``mlp2x_gelu`` is ``Linear(d_vision → d_llm), GELU (exact erf), Linear(d_llm → d_llm)`` with parameter
indices 0 and 2, the original's ``mm_projector`` layout (spec §2).
"""

from __future__ import annotations

import re

from torch import nn

_MLP = re.compile(r"^mlp(\d+)x_gelu$")


class Projector(nn.Sequential):
    """Maps tower features ``[..., d_vision]`` to LLM embeddings ``[..., d_llm]``.

    Args:
        kind: ``mlp{N}x_gelu`` (N ≥ 1 linear layers with exact GELU between), ``linear`` or ``identity``.
        in_features: tower width ``d_vision``.
        out_features: LLM width ``d_llm``.
    """

    def __init__(self, kind: str = "mlp2x_gelu", in_features: int = 1024, out_features: int = 4096) -> None:
        self.kind, self.in_features, self.out_features = kind, in_features, out_features
        if kind == "identity":
            if in_features != out_features:
                raise ValueError(f"identity projector needs equal widths, got {in_features} → {out_features}")
            super().__init__()
            return
        if kind == "linear":
            super().__init__(nn.Linear(in_features, out_features))
            return
        match = _MLP.match(kind)
        if match is None:
            raise ValueError(
                f"unknown projector {kind!r}: use 'mlp{{N}}x_gelu' (e.g. mlp2x_gelu), 'linear' or 'identity'"
            )
        layers: list[nn.Module] = [nn.Linear(in_features, out_features)]
        for _ in range(int(match.group(1)) - 1):
            layers += [nn.GELU(), nn.Linear(out_features, out_features)]
        super().__init__(*layers)

    def to_config(self) -> dict[str, object]:
        return {"kind": self.kind, "in_features": self.in_features, "out_features": self.out_features}
