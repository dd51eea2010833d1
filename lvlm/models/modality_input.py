"""How a modality enters the model: its tower's name, the placeholder token standing for it, its input name."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class ModalityInput:
    """One visual modality of a :class:`~lvlm.models.video_llava.VideoLLaVA`.

    Attributes:
        name: the modality (``image``, ``video``, ``depth``, ...); also the key of its tower.
        token: the placeholder token in the tokenizer (``<image>``).
        token_id: its id; ``input_ids`` carry it once per visual token.
        input_name: keyword of ``forward``/``generate`` and key of the batch tensor (``images``).
    """

    name: str
    token: str
    token_id: int
    input_name: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def default_input_name(name: str) -> str:
    """``image`` → ``images``: the batch key convention of lvlm's collator."""
    return name if name.endswith("s") else f"{name}s"


def placeholder_token(name: str) -> str:
    """The default placeholder of a modality: ``<name>`` (``<image>``, ``<video>``, ``<depth>``)."""
    return f"<{name}>"
