"""Media slots: one visual modality as the data pipeline sees it (marker, placeholder token, batch key, size).

A slot ties together the marker written in conversations (`<image>`), the special token repeated in
`input_ids` (one per visual token, as transformers' VideoLlava does), the key of the stacked tensor in a
batch (`images`), and the preprocessing the tower declares. A new modality (`<depth>`, ...) is a new slot
given as a plain dict in a recipe; nothing in lvlm changes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

from lvlm.data.transforms import CLIP_MEAN, CLIP_STD

Triple = tuple[float, float, float]


@dataclass(frozen=True)
class MediaSlot:
    """One visual modality.

    Attributes:
        marker: The placeholder as written in conversations, e.g. `"<image>"`.
        token: The tokenizer's special token repeated in `input_ids`, e.g. `"<image>"`.
        batch_key: Key of the stacked tensor in a batch: `"images"` (`[n, 3, h, w]`) or `"videos"`
            (`[n, t, 3, h, w]`).
        kind: `"image"` (decoded as one picture) or `"video"` (decoded as `num_frames` frames).
        tokens_per_item: Visual tokens per image; for videos, per frame (multiplied by `num_frames`).
        size: Side of the square input the tower expects.
        mean: Per-channel normalisation mean.
        std: Per-channel normalisation std.
        image_mode: `"crop"` (resize + centre crop) or `"pad"` (pad to square with the mean colour); images only.
    """

    marker: str
    token: str
    batch_key: str
    kind: Literal["image", "video"]
    tokens_per_item: int
    size: int
    mean: Triple
    std: Triple
    image_mode: Literal["crop", "pad"] = "crop"

    def __post_init__(self) -> None:
        if self.kind not in ("image", "video"):
            raise ValueError(f"MediaSlot {self.marker!r}: kind must be 'image' or 'video', got {self.kind!r}")
        if self.image_mode not in ("crop", "pad"):
            raise ValueError(f"MediaSlot {self.marker!r}: image_mode must be 'crop' or 'pad', got {self.image_mode!r}")
        if self.tokens_per_item <= 0 or self.size <= 0:
            raise ValueError(f"MediaSlot {self.marker!r}: tokens_per_item and size must be positive")
        if len(self.mean) != 3 or len(self.std) != 3:
            raise ValueError(f"MediaSlot {self.marker!r}: mean and std need 3 values (RGB)")

    @property
    def name(self) -> str:
        """The modality name used in `batch["modalities"]`: the marker without brackets (`"image"`)."""
        return self.marker.strip("<>")

    def num_tokens(self, num_frames: int) -> int:
        """Placeholder ids one item of this slot expands to (`tokens_per_item`, times `num_frames` for videos)."""
        return self.tokens_per_item * (num_frames if self.kind == "video" else 1)

    def to_dict(self) -> dict[str, Any]:
        """Plain-dict form (lists for mean/std), suitable for YAML recipes."""
        out = asdict(self)
        out["mean"], out["std"] = list(self.mean), list(self.std)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> MediaSlot:
        """Builds a slot from a plain dict (the inverse of `to_dict`).

        Raises:
            ValueError: If fields are missing or unknown; the message names them.
        """
        fields = set(cls.__dataclass_fields__)
        unknown, missing = set(data) - fields, {f for f in fields if f != "image_mode"} - set(data)
        if unknown or missing:
            raise ValueError(
                f"media slot {dict(data)!r}: unknown fields {sorted(unknown)}, missing fields {sorted(missing)}; "
                f"a slot needs {sorted(fields)}"
            )
        values = dict(data)
        values["mean"], values["std"] = tuple(float(v) for v in data["mean"]), tuple(float(v) for v in data["std"])
        return cls(**values)


def default_media_slots(
    image_tokens: int = 256,
    frame_tokens: int = 257,
    size: int = 224,
    mean: Triple = CLIP_MEAN,
    std: Triple = CLIP_STD,
) -> list[MediaSlot]:
    """The Video-LLaVA slots: `<image>` (256 tokens, CLS dropped) and `<video>` (257 tokens per frame).

    Args:
        image_tokens: Visual tokens per image.
        frame_tokens: Visual tokens per video frame.
        size: Input side of both towers.
        mean: Normalisation mean of both towers.
        std: Normalisation std of both towers.

    Returns:
        `[image_slot, video_slot]`.
    """
    common = {"size": size, "mean": tuple(mean), "std": tuple(std)}
    return [
        MediaSlot(
            marker="<image>", token="<image>", batch_key="images", kind="image", tokens_per_item=image_tokens, **common
        ),
        MediaSlot(
            marker="<video>", token="<video>", batch_key="videos", kind="video", tokens_per_item=frame_tokens, **common
        ),
    ]


def media_slots_from_config(slots: Sequence[Mapping[str, Any] | MediaSlot] | None) -> list[MediaSlot]:
    """Resolves a recipe's `slots` field: None gives the default image + video slots.

    Raises:
        ValueError: If two slots share a marker, a token or a batch key.
    """
    resolved = (
        default_media_slots()
        if slots is None
        else [s if isinstance(s, MediaSlot) else MediaSlot.from_dict(s) for s in slots]
    )
    for attr in ("marker", "token", "batch_key"):
        values = [getattr(s, attr) for s in resolved]
        if len(set(values)) != len(values):
            raise ValueError(f"media slots: each slot needs its own {attr}, got {values}")
    return resolved
