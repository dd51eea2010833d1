"""Which OpenAI content parts a served model takes, and to which of its modalities each goes.

Every modality takes ``NAME_url`` parts (``image_url``, ``video_url``, a plugin's ``depth_url``), each with
``{"url": ...}``. A modality may also declare OpenAI part types of their own shape in ``openai_part_types``; the
one lvlm serve reads is ``input_audio``, ``{"input_audio": {"data": BASE64, "format": "wav"}}``, whose decoded
bytes go to that modality's ``decode`` as a file's bytes would. A part no modality of the model takes is refused
with a 400 that lists the part types it does take.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from lvlm.core.errors import UserError
from lvlm.inference.serve_errors import bad_request
from lvlm.modalities import Modality
from lvlm.modalities.catalog import unbound_modality

MEDIA_PART_SUFFIX = "_url"  # image_url, video_url (the OpenAI/vLLM names), and NAME_url for any other modality
INPUT_AUDIO = "input_audio"
DECLARABLE_PART_TYPES = (INPUT_AUDIO,)  # what a modality may list in ``openai_part_types``
_FORMAT = re.compile(r"^[A-Za-z0-9.+-]{1,20}$")


@dataclass(frozen=True)
class PartTypes:
    """The media part types a served model takes.

    Attributes:
        modalities: the model's modality names (each takes ``NAME_url`` parts).
        routes: declared part type → the modality it goes to (``{"input_audio": "audio"}``).
        bound: the model's modalities by name, whose placeholders mark media in the prompt (a name not here is
            marked with its default placeholder ``<name>``).
    """

    modalities: tuple[str, ...] = ("image", "video")
    routes: Mapping[str, str] = field(default_factory=dict)
    bound: Mapping[str, Modality] = field(default_factory=dict)

    @classmethod
    def of(cls, modalities: Mapping[str, Modality]) -> PartTypes:
        """The part types of a model's modalities (checked once, when the server starts).

        Raises:
            UserError: a modality declares a part type lvlm serve does not read, or two declare the same one.
        """
        routes: dict[str, str] = {}
        for name, modality in modalities.items():
            for part in modality.openai_part_types:
                if part not in DECLARABLE_PART_TYPES:
                    raise UserError(f"modality {name!r} ({type(modality).__name__}.openai_part_types) declares "
                                    f"{part!r}; lvlm serve reads {', '.join(DECLARABLE_PART_TYPES)}")  # fmt: skip
                if part in routes:
                    raise UserError(f"modalities {routes[part]!r} and {name!r} both declare the part type {part!r}")
                routes[part] = name
        return cls(tuple(modalities), routes, dict(modalities))

    def modality(self, name: str) -> Modality:
        """The model's modality ``name`` (its placeholder marks the media), else a tower-less one with ``<name>``."""
        return self.bound.get(name) or unbound_modality(name)

    def describe(self) -> str:
        """The part types in words, for errors: ``text, image_url, video_url (each {"url": ...}), input_audio``."""
        urls = ", ".join(f"{name}{MEDIA_PART_SUFFIX}" for name in self.modalities)
        declared = "".join(f", {part} ({_SHAPES[part]})" for part in self.routes)
        return f'text, {urls} (each {{"url": ...}}){declared}'


_SHAPES = {INPUT_AUDIO: '{"data": BASE64, "format": "wav"}'}


def declared_part_url(part_type: str, value: Any, param: str) -> str:
    """A ``data:`` URL of a declared part's payload (read later like any other media URL, within the size cap).

    Raises:
        ApiError: 400 for a part without the shape its type has.
    """
    data = value.get("data") if isinstance(value, dict) else None
    fmt = value.get("format", "wav") if isinstance(value, dict) else None
    if not isinstance(data, str) or not isinstance(fmt, str) or not _FORMAT.match(fmt):
        raise bad_request(f'a {part_type} part is {{"type": "{part_type}", "{part_type}": {_SHAPES[part_type]}}}',
                          "invalid_media_url", param)  # fmt: skip
    return f"data:audio/{fmt};base64,{data}"
