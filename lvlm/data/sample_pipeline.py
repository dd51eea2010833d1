"""One raw shard sample → a `ProcessedSample`, in two steps so batches can be formed before any decoding.

`prepare` reads the JSON, finds the media members and tokenizes (cheap; fixes the sample's length and which
media it keeps). `load` decodes and transforms the kept media (expensive). Both raise typed errors
(`BadSampleError`, `MediaDecodeError`) that the streams catch, report and skip.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from transformers import PreTrainedTokenizerBase

from lvlm.data.captions import caption_record
from lvlm.data.collate import ProcessedSample
from lvlm.data.decoding import decode_frames, decode_image, decode_video
from lvlm.data.media import MediaSlot
from lvlm.data.sample_errors import SampleFormatError
from lvlm.data.sample_format import media_members
from lvlm.data.templates import ChatTemplate
from lvlm.data.tokenization import TokenizedSample, tokenize_conversation, tokenize_prompt
from lvlm.data.transforms import ImageTransform, VideoTransform


@dataclass
class PreparedSample:
    """A tokenized sample whose media are still encoded bytes.

    Attributes:
        key: The sample's `__key__`.
        url: The shard it came from.
        tokens: The tokenized conversation (or prompt).
        media: `(slot, payload)` per kept marker, in marker order; payload is image/video bytes or a list of
            frame bytes.
        meta: Metadata for the batch's `meta` list.
    """

    key: str
    url: str
    tokens: TokenizedSample
    media: list[tuple[MediaSlot, Any]] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def modality(self) -> str:
        """`"text"`, or the slot names in marker order, each once, joined by `+`."""
        names = list(dict.fromkeys(slot.name for slot, _ in self.media))
        return "+".join(names) if names else "text"


class SampleProcessor:
    """Turns raw WebDataset samples into model-ready samples.

    Args:
        tokenizer: Tokenizer with one special token per slot.
        template: Chat template.
        slots: Media slots.
        num_frames: Frames sampled per video.
        max_length: Maximum tokens per sample, visual tokens included.
        mode: `"train"` (targets on answers; also used for validation loss) or `"prompt"` (generation prompt,
            the last answer kept as `meta["reference"]`).
        augment: Random crops for training (never for evaluation).
        seed: Seed of the augmentation generators (set per worker with `reseed`).
        keep_meta: Put the JSON metadata, `key`, `url` and `reference` (the last answer) in `meta`; always on in
            `"prompt"` mode, off for training batches (kept light).
        video_backend: Video decoder (`"pyav"`, `"decord"`); None for the default.
        media_dtype: `"float32"`: normalised pixels; `"uint8"`: 0-255 pixels, a quarter of the bytes through
            the DataLoader's inter-process queues, normalised by the towers (on the GPU in training).
        caption_prompts: Shard URL -> prompt, for caption-pair shards (`lvlm.data.captions`): their samples
            become a one-turn conversation asking that prompt.
    """

    def __init__(
        self,
        tokenizer: PreTrainedTokenizerBase,
        template: ChatTemplate,
        slots: Sequence[MediaSlot],
        num_frames: int,
        max_length: int,
        mode: Literal["train", "prompt"] = "train",
        augment: bool = False,
        seed: int | None = None,
        keep_meta: bool = False,
        video_backend: str | None = None,
        media_dtype: Literal["float32", "uint8"] = "float32",
        caption_prompts: Mapping[str, str] | None = None,
    ) -> None:
        if media_dtype not in ("float32", "uint8"):
            raise ValueError(f"media_dtype must be 'float32' or 'uint8', got {media_dtype!r}")
        self.normalize = media_dtype == "float32"
        self.tokenizer, self.template, self.slots = tokenizer, template, list(slots)
        self.video_backend = video_backend
        self.caption_prompts = dict(caption_prompts or {})
        self.keep_meta = keep_meta or mode == "prompt"
        self.num_frames, self.max_length, self.mode, self.augment = num_frames, max_length, mode, augment
        self.reseed(seed)

    def reseed(self, seed: int | None) -> None:
        """Rebuilds the transforms with a new augmentation seed (one per rank and worker)."""
        self._transforms: dict[str, Any] = {}
        for i, slot in enumerate(self.slots):
            slot_seed = None if seed is None else seed * 31 + i
            if slot.kind == "image":
                self._transforms[slot.marker] = ImageTransform(
                    slot.size,
                    slot.mean,
                    slot.std,
                    mode=slot.image_mode,
                    augment=self.augment,
                    seed=slot_seed,
                    normalize=self.normalize,
                )
            else:
                self._transforms[slot.marker] = VideoTransform(
                    slot.size, slot.mean, slot.std, augment=self.augment, seed=slot_seed, normalize=self.normalize
                )

    def prepare(self, raw: dict[str, Any]) -> PreparedSample:
        """Parses, checks and tokenizes a raw sample (no media decoding).

        Raises:
            BadSampleError: Bad JSON shape, unknown members, marker/media count mismatch, too long.
        """
        key, url = str(raw.get("__key__", "?")), str(raw.get("__url__", ""))
        prompt = self.caption_prompts.get(url)
        record = _read_json(raw, key) if prompt is None else caption_record(raw, prompt)
        members = media_members(raw)
        videos = members["videos"] + members["frames"]
        payloads = {"image": [data for _, data in members["images"]], "video": [data for _, data in videos]}
        counts = {kind: len(items) for kind, items in payloads.items()}
        tokenize = tokenize_conversation if self.mode == "train" else tokenize_prompt
        tokens = tokenize(
            record["conversations"],
            self.tokenizer,
            self.template,
            self.slots,
            self.num_frames,
            self.max_length,
            key=key,
            media_counts=counts,
        )
        by_marker = {slot.marker: slot for slot in self.slots}
        used = {"image": 0, "video": 0}
        media: list[tuple[MediaSlot, Any]] = []
        for marker in tokens.markers:
            slot = by_marker[marker]
            media.append((slot, payloads[slot.kind][used[slot.kind]]))
            used[slot.kind] += 1
        meta: dict[str, Any] = {}
        if self.keep_meta:
            meta = {k: v for k, v in record.items() if k != "conversations"}
            answers = [t["value"] for t in record["conversations"] if t.get("from") == "gpt"]
            reference = tokens.reference if self.mode == "prompt" else answers[-1]
            meta.update(key=key, url=url, reference=reference)
        return PreparedSample(key, url, tokens, media, meta)

    def load(self, prepared: PreparedSample) -> ProcessedSample:
        """Decodes and transforms the kept media.

        Raises:
            MediaDecodeError: If an image or video cannot be decoded.
        """
        media = []
        for slot, payload in prepared.media:
            transform = self._transforms[slot.marker]
            if slot.kind == "image":
                tensor = transform(decode_image(payload, key=prepared.key))
            elif isinstance(payload, list):
                tensor = transform(decode_frames(payload, self.num_frames, key=prepared.key, short_side=slot.size))
            else:
                frames = decode_video(
                    payload, self.num_frames, key=prepared.key, short_side=slot.size, backend=self.video_backend
                )
                tensor = transform(frames)
            media.append((slot.batch_key, tensor))
        tokens = prepared.tokens
        return ProcessedSample(prepared.key, tokens.input_ids, tokens.labels, media, prepared.modality, prepared.meta)


def _read_json(raw: dict[str, Any], key: str) -> dict[str, Any]:
    if "json" not in raw:
        raise SampleFormatError(key, "the sample has no 'json' member (conversations); see docs/data-format.md")
    try:
        record = json.loads(raw["json"])
    except (ValueError, UnicodeDecodeError) as err:
        raise SampleFormatError(key, f"the 'json' member is not valid JSON ({err})") from err
    if not isinstance(record, dict) or "conversations" not in record:
        raise SampleFormatError(key, "the 'json' member must be an object with a 'conversations' list")
    return record
