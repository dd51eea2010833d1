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
from lvlm.data.sample_errors import SampleFormatError
from lvlm.data.sample_format import media_members
from lvlm.data.templates import ChatTemplate
from lvlm.data.tokenization import SegmentTokenizer, TokenizedSample, tokenize_conversation, tokenize_prompt
from lvlm.models.modality import Modality


@dataclass
class PreparedSample:
    """A tokenized sample whose media are still encoded bytes.

    Attributes:
        key: The sample's `__key__`.
        url: The shard it came from.
        tokens: The tokenized conversation (or prompt).
        media: `(modality, payload)` per kept marker, in marker order; payload is a member's bytes or a list of
            frame bytes.
        meta: Metadata for the batch's `meta` list.
    """

    key: str
    url: str
    tokens: TokenizedSample
    media: list[tuple[Modality, Any]] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def modality(self) -> str:
        """`"text"`, or the modality names in marker order, each once, joined by `+`."""
        names = list(dict.fromkeys(modality.name for modality, _ in self.media))
        return "+".join(names) if names else "text"


class SampleProcessor:
    """Turns raw WebDataset samples into model-ready samples.

    Args:
        tokenizer: Tokenizer with one special token per modality.
        template: Chat template.
        modalities: The modalities (placeholders, shard members, decoding, transforms).
        num_frames: Frames sampled per item of a frame-based modality (video).
        max_length: Maximum tokens per sample, visual tokens included.
        mode: `"train"` (targets on answers; also used for validation loss) or `"prompt"` (generation prompt,
            the last answer kept as `meta["reference"]`).
        augment: Random augmentation for training (never for evaluation).
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
        modalities: Sequence[Modality],
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
        self.tokenizer, self.template, self.modalities = tokenizer, template, list(modalities)
        self.video_backend = video_backend
        self.caption_prompts = dict(caption_prompts or {})
        self.keep_meta = keep_meta or mode == "prompt"
        self.num_frames, self.max_length, self.mode, self.augment = num_frames, max_length, mode, augment
        self._segment_tokenizer: SegmentTokenizer | None = None  # built at the first sample, then reused
        self.reseed(seed)

    def reseed(self, seed: int | None) -> None:
        """Rebuilds the transforms with a new augmentation seed (one per rank and worker)."""
        self._transforms: dict[str, Any] = {}
        for i, modality in enumerate(self.modalities):
            self._transforms[modality.name] = modality.make_transform(
                augment=self.augment, seed=None if seed is None else seed * 31 + i, normalize=self.normalize
            )

    def prepare(self, raw: dict[str, Any]) -> PreparedSample:
        """Parses, checks and tokenizes a raw sample (no media decoding).

        Raises:
            BadSampleError: Bad JSON shape, unknown members, marker/media count mismatch, too long.
        """
        key, url = str(raw.get("__key__", "?")), str(raw.get("__url__", ""))
        prompt = self.caption_prompts.get(url)
        record = _read_json(raw, key) if prompt is None else caption_record(raw, prompt, self.modalities)
        members = media_members(raw, self.modalities)
        payloads = {name: [data for _, data in items] for name, items in members.items()}
        counts = {name: len(items) for name, items in payloads.items()}
        tokenize = tokenize_conversation if self.mode == "train" else tokenize_prompt
        if self._segment_tokenizer is None:
            self._segment_tokenizer = SegmentTokenizer(self.tokenizer, self.modalities, self.num_frames)
        tokens = tokenize(
            record["conversations"],
            self.tokenizer,
            self.template,
            self.modalities,
            self.num_frames,
            self.max_length,
            key=key,
            media_counts=counts,
            segment_tokenizer=self._segment_tokenizer,
        )
        by_token = {modality.token: modality for modality in self.modalities}
        used = dict.fromkeys(payloads, 0)
        media: list[tuple[Modality, Any]] = []
        for marker in tokens.markers:
            modality = by_token[marker]
            media.append((modality, payloads[modality.name][used[modality.name]]))
            used[modality.name] += 1
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
            MediaDecodeError: If a media item cannot be decoded.
        """
        media = []
        for modality, payload in prepared.media:
            item = modality.decode(payload, key=prepared.key, num_frames=self.num_frames, backend=self.video_backend)
            media.append((modality.input_name, self._transforms[modality.name](item)))
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
