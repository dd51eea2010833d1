"""Conversation → `input_ids` + `labels`, by tokenizing template segments one by one.

Each segment of the rendered conversation (`ChatTemplate.segments`) is tokenized on its own and the pieces are
concatenated, so the supervised span is known by construction (no offset arithmetic). Within a segment every
visual marker (`<image>`) becomes `modality.num_tokens(num_frames)` copies of its placeholder id, as
transformers' VideoLlava expects; their labels are -100. The end-of-turn separator becomes the tokenizer's
EOS id and is supervised. BOS starts every sequence.

Legend: `n` tokens of one sample.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from transformers import PreTrainedTokenizerBase

from lvlm.data.record_format import RecordError, training_turns
from lvlm.data.sample_errors import (
    MissingMediaError,
    PlaceholderMismatchError,
    SampleFormatError,
    SampleTooLongError,
)
from lvlm.data.templates import GPT, HUMAN, ChatTemplate, Segment, Turn
from lvlm.models.modality import Modality

IGNORE_INDEX = -100


@dataclass(frozen=True)
class TokenizedSample:
    """One tokenized conversation.

    Attributes:
        input_ids: `[n]` long token ids with expanded visual placeholders.
        labels: `[n]` long targets (-100 where not supervised), or None for a generation prompt.
        markers: The visual markers kept, in order of appearance (after truncation).
        visual_spans: `(start, end)` of each kept marker's placeholder block in `input_ids`.
        reference: For a generation prompt, the text of the answer it asks for (None if there is none).
    """

    input_ids: torch.Tensor
    labels: torch.Tensor | None
    markers: tuple[str, ...]
    visual_spans: tuple[tuple[int, int], ...]
    reference: str | None = None

    def __len__(self) -> int:
        return int(self.input_ids.shape[0])


def parse_conversations(conversations: Any, key: str = "?") -> list[Turn]:
    """LLaVA ``conversations`` as ``(role, text)`` turns (:func:`lvlm.data.record_format.training_turns`).

    Raises:
        SampleFormatError: The shape is wrong; the message names the field, the turn and what was expected.
    """
    try:
        return training_turns(conversations)
    except RecordError as err:
        raise SampleFormatError(key, str(err)) from None


class SegmentTokenizer:
    """Tokenizes segments: text pieces with the tokenizer, markers as placeholder blocks, EOS as the EOS id.

    Text pieces are tokenized one by one and remembered (up to `CACHE_PIECES` distinct pieces, the first ones
    seen): the template's recurring pieces (system prompt, role names) are tokenized once. A piece's ids do not
    depend on what surrounds it (each piece is tokenized alone), so remembering them changes no id. Keep one
    instance per tokenizer and do not change the tokenizer's vocabulary while it is in use.

    Args:
        tokenizer: The tokenizer.
        modalities: The modalities whose markers expand to placeholder blocks.
        num_frames: Frames per item of a frame-based modality (video).
    """

    CACHE_PIECES = 4096

    def __init__(self, tokenizer: PreTrainedTokenizerBase, modalities: Sequence[Modality], num_frames: int) -> None:
        self.tokenizer = tokenizer
        self.block = {m.token: (_token_id(tokenizer, m.token), m.num_tokens(num_frames)) for m in modalities}
        self.pattern = re.compile("(" + "|".join(re.escape(m.token) for m in modalities) + ")") if modalities else None
        self._pieces: dict[str, list[int]] = {}

    def piece_ids(self, piece: str) -> list[int]:
        """The ids of one text piece, tokenized alone without special tokens."""
        ids = self._pieces.get(piece)
        if ids is None:
            ids = self.tokenizer(piece, add_special_tokens=False)["input_ids"]
            if len(self._pieces) < self.CACHE_PIECES:
                self._pieces[piece] = ids
        return ids

    def __call__(self, segments: Sequence[Segment]) -> tuple[list[int], list[int], list[str], list[tuple[int, int]]]:
        ids: list[int] = [] if self.tokenizer.bos_token_id is None else [self.tokenizer.bos_token_id]
        labels: list[int] = [IGNORE_INDEX] * len(ids)
        markers: list[str] = []
        spans: list[tuple[int, int]] = []
        for seg in segments:
            if seg.is_eos:
                if self.tokenizer.eos_token_id is None:
                    raise ValueError("the tokenizer has no eos_token; set one (the end-of-turn target)")
                pieces = [self.tokenizer.eos_token_id]
                ids += pieces
                labels += pieces if seg.is_target else [IGNORE_INDEX]
                continue
            for piece in self.pattern.split(seg.text) if self.pattern else [seg.text]:
                if piece in self.block:
                    token_id, count = self.block[piece]
                    markers.append(piece)
                    spans.append((len(ids), len(ids) + count))
                    ids += [token_id] * count
                    labels += [IGNORE_INDEX] * count
                elif piece:
                    piece_ids = self.piece_ids(piece)
                    ids += piece_ids
                    labels += piece_ids if seg.is_target else [IGNORE_INDEX] * len(piece_ids)
        return ids, labels, markers, spans


def _long_tensor(values: list[int]) -> torch.Tensor:
    """int64 ``[n]`` of a list of ints; the same tensor as ``torch.tensor(values)``, built through numpy (several
    times faster for the thousands of placeholder ids of a video)."""
    return torch.from_numpy(np.array(values, dtype=np.int64))


def _token_id(tokenizer: PreTrainedTokenizerBase, token: str) -> int:
    token_id = tokenizer.convert_tokens_to_ids(token)
    if token_id is None or (token_id == tokenizer.unk_token_id and token != tokenizer.unk_token):
        raise ValueError(
            f"the tokenizer has no token {token!r} for a modality; add it as a special token "
            f"(tokenizer.add_special_tokens({{'additional_special_tokens': [{token!r}]}}) and resize the embeddings)"
        )
    return int(token_id)


def _check_media_counts(
    turns: Sequence[Turn], modalities: Sequence[Modality], media_counts: Mapping[str, int], key: str
):
    for i, (role, text) in enumerate(turns):
        if role == GPT and any(m.token in text for m in modalities):
            raise SampleFormatError(key, f"turn {i} (gpt) contains a visual marker; markers belong in human turns")
    for modality in sorted({m.name for m in modalities} | set(media_counts)):
        names = [m.token for m in modalities if m.name == modality]
        found = sum(text.count(marker) for _, text in turns for marker in names)
        given = media_counts.get(modality, 0)
        where = f"{found} {modality} marker(s) ({', '.join(names) or 'no modality'}) in the conversation"
        if found > given:
            raise MissingMediaError(key, f"{where} but only {given} {modality} member(s) in the shard; add the media")
        if found < given:
            raise PlaceholderMismatchError(
                key, f"{where} but {given} {modality} member(s) in the shard; fix the markers or drop the extra media"
            )


def tokenize_conversation(
    conversations: Any,
    tokenizer: PreTrainedTokenizerBase,
    template: ChatTemplate,
    modalities: Sequence[Modality],
    num_frames: int,
    max_length: int,
    *,
    key: str = "?",
    media_counts: Mapping[str, int] | None = None,
    segment_tokenizer: SegmentTokenizer | None = None,
) -> TokenizedSample:
    """Tokenizes a training conversation; only assistant answers and their end-of-turn EOS are supervised.

    A trailing human turn (a question with no answer) is dropped. Sequences longer than `max_length` are cut at
    `max_length`, or just before a visual block the cut would split (its marker is then dropped from `markers`,
    and the caller drops that media item).

    Args:
        conversations: LLaVA `conversations` list.
        tokenizer: Tokenizer holding one special token per modality.
        template: Chat template.
        modalities: The modalities whose placeholders expand (`modality.num_tokens(num_frames)` ids each).
        num_frames: Frames per item of a frame-based modality (video).
        max_length: Maximum sequence length in tokens, visual tokens included.
        key: Sample key for error messages.
        media_counts: Media members per modality name (`{"image": 1, "video": 0}`); when given, each
            modality's markers must match in number: its i-th marker takes its i-th member.
        segment_tokenizer: A `SegmentTokenizer` of the same tokenizer, modalities and `num_frames` to reuse (it
            remembers recurring pieces); None builds one for this call.

    Returns:
        The tokenized sample.

    Raises:
        SampleFormatError: Wrong JSON shape, or no gpt turn to learn from.
        MissingMediaError: More markers of a kind than media members.
        PlaceholderMismatchError: Fewer markers of a kind than media members.
        SampleTooLongError: Visual tokens alone exceed `max_length`, or no target is left after truncation.
    """
    turns = parse_conversations(conversations, key)
    if turns[-1][0] == HUMAN:
        turns = turns[:-1]
    if not turns:
        raise SampleFormatError(key, "no gpt answer to learn from (a training sample needs a human turn and an answer)")
    if media_counts is not None:
        _check_media_counts(turns, modalities, media_counts, key)
    markers_all = [m.token for m in modalities]
    try:
        segments = template.segments(turns, markers_all)
    except ValueError as err:
        raise SampleFormatError(key, str(err)) from err
    segment_tokenizer = segment_tokenizer or SegmentTokenizer(tokenizer, modalities, num_frames)
    ids, labels, markers, spans = segment_tokenizer(segments)
    if len(ids) > max_length:
        ids, labels, markers, spans = _truncate(ids, labels, markers, spans, max_length, key)
    return TokenizedSample(_long_tensor(ids), _long_tensor(labels), tuple(markers), tuple(spans))


def _truncate(ids, labels, markers, spans, max_length: int, key: str):
    visual = sum(end - start for start, end in spans)
    if visual > max_length:
        raise SampleTooLongError(key, f"{visual} visual tokens alone exceed max_length={max_length}")
    cut = max_length
    for start, end in spans:
        if start < cut < end:
            cut = start
    kept = [i for i, (_, end) in enumerate(spans) if end <= cut]
    if all(label == IGNORE_INDEX for label in labels[:cut]):
        raise SampleTooLongError(
            key, f"{len(ids)} tokens; nothing supervised is left within max_length={max_length} (raise max_length)"
        )
    return ids[:cut], labels[:cut], [markers[i] for i in kept], [spans[i] for i in kept]


def tokenize_prompt(
    conversations: Any,
    tokenizer: PreTrainedTokenizerBase,
    template: ChatTemplate,
    modalities: Sequence[Modality],
    num_frames: int,
    max_length: int,
    *,
    key: str = "?",
    media_counts: Mapping[str, int] | None = None,
    segment_tokenizer: SegmentTokenizer | None = None,
) -> TokenizedSample:
    """Tokenizes the generation prompt: the conversation up to its last assistant turn, ending `"ASSISTANT:"`.

    The last gpt turn (if the conversation ends with one) becomes `reference`; markers in the dropped answer
    are not allowed. Prompts are never truncated.

    Args:
        conversations, tokenizer, template, modalities, num_frames, key, media_counts, segment_tokenizer: As
            `tokenize_conversation`.
        max_length: Maximum prompt length; longer prompts are rejected.

    Returns:
        A sample with `labels=None` and `reference` set.

    Raises:
        SampleFormatError, MissingMediaError, PlaceholderMismatchError: As `tokenize_conversation`.
        SampleTooLongError: If the prompt is longer than `max_length`.
    """
    turns = parse_conversations(conversations, key)
    reference = None
    if turns[-1][0] == GPT:
        reference = turns[-1][1]
        turns = turns[:-1]
    if media_counts is not None:
        _check_media_counts(turns, modalities, media_counts, key)
    segments = template.prompt_segments(turns, [m.token for m in modalities])
    segment_tokenizer = segment_tokenizer or SegmentTokenizer(tokenizer, modalities, num_frames)
    ids, _, markers, spans = segment_tokenizer(segments)
    if len(ids) > max_length:
        raise SampleTooLongError(key, f"the prompt has {len(ids)} tokens, more than max_length={max_length}")
    return TokenizedSample(_long_tensor(ids), None, tuple(markers), tuple(spans), reference)
