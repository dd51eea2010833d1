"""The modalities a data pipeline is given, checked once: each is a :class:`~lvlm.models.modality.Modality`
(declared with the model, below ``lvlm.data``), so nothing in ``lvlm.data`` knows which kinds of media exist.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from lvlm.models.modality import Modality


def modality_list(modalities: Mapping[str, Modality] | Sequence[Modality] | None) -> list[Modality]:
    """The modalities as a list (a mapping's values), checked: each needs its own name, token and input name.

    Raises:
        ValueError: two modalities share a name, a token or an input name.
    """
    found = list((modalities or {}).values() if isinstance(modalities, Mapping) else modalities or ())
    for attr in ("name", "token", "input_name"):
        values = [getattr(m, attr) for m in found]
        if len(set(values)) != len(values):
            raise ValueError(f"modalities: each needs its own {attr}, got {values}")
    return found
