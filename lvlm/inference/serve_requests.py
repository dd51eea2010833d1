"""OpenAI chat-completion requests → lvlm conversations: LLaVA turns, media references and decoding settings.

Messages become the same turns ``lvlm chat`` and ``lvlm predict`` build: a user message's text parts joined by
newlines, its media markers in front (videos first, then images: :func:`lvlm.inference.prompts.with_markers`;
which part types go to which modality: :mod:`lvlm.inference.serve_parts`),
consecutive messages of one role merged. The prompt itself is rendered later by
:func:`lvlm.inference.prompts.prepare_prompt` with the checkpoint's template, so serving and training cannot
drift apart. A ``system`` message replaces the template's system prompt.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from lvlm.data.templates import GPT, HUMAN
from lvlm.inference.batch_generate import GenerationSettings
from lvlm.inference.prompts import with_markers
from lvlm.inference.serve_errors import bad_request
from lvlm.inference.serve_media import MediaPolicy
from lvlm.inference.serve_parts import MEDIA_PART_SUFFIX, PartTypes, declared_part_url


class ContentPart(BaseModel):
    """A message content part: ``text``, or ``NAME_url`` with ``{"url": ...}`` for a media item of modality NAME
    (``image_url`` and ``video_url`` as the OpenAI API and vLLM name them; ``depth_url`` for a plugin's ``depth``),
    or a part type a modality declares (``input_audio``)."""

    model_config = ConfigDict(extra="allow")
    type: str
    text: str | None = None

    def media(self) -> tuple[str, str] | None:
        """``(modality, url)`` of a media part, None for anything else."""
        modality = self.type.removesuffix(MEDIA_PART_SUFFIX)
        value = (self.model_extra or {}).get(self.type)
        if (
            self.type == modality
            or not modality
            or not isinstance(value, dict)
            or not isinstance(value.get("url"), str)
        ):
            return None
        return modality, value["url"]


class Message(BaseModel):
    model_config = ConfigDict(extra="ignore")
    role: str
    content: str | list[ContentPart] | None = None


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="ignore")
    include_usage: bool = False


class ChatCompletionRequest(BaseModel):
    """The fields of ``POST /v1/chat/completions`` the server reads (others are accepted and ignored)."""

    model_config = ConfigDict(extra="ignore")
    model: str
    messages: list[Message] = Field(min_length=1)
    max_tokens: int | None = Field(default=None, ge=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, gt=0, le=1)
    seed: int | None = None
    stop: str | list[str] | None = None
    n: int = 1
    stream: bool = False
    stream_options: StreamOptions | None = None


@dataclass(frozen=True)
class ServeLimits:
    """What one request may ask for.

    Attributes:
        media: where media may come from and how large an item may be.
        max_body_bytes: largest request body.
        max_tokens: largest ``max_tokens`` (also the default when a request gives none).
        max_media_items: images and videos per request.
        max_frames: visual frames per request (an image counts 1, a video its frames).
        default_temperature: used when a request gives none.
    """

    media: MediaPolicy = field(default_factory=MediaPolicy)
    max_body_bytes: int = 100 * 2**20
    max_tokens: int = 1024
    max_media_items: int = 8
    max_frames: int = 64
    default_temperature: float = 0.2


@dataclass(frozen=True)
class MediaRef:
    """One media item of a request: its modality, its URL and the request field it came from."""

    modality: str
    url: str
    param: str


@dataclass
class ChatJob:
    """A validated request, ready for media loading and prompt preparation.

    Attributes:
        model: the model name asked for.
        system: the system prompt replacing the template's, or None.
        turns: LLaVA turns ending with the human turn to answer.
        media: the media items in order of appearance.
        settings: decoding settings (``max_new_tokens`` already within the server's limit).
        stop: strings that end the answer (not included in it).
        explicit_max_tokens: the request set ``max_tokens`` (refused if it does not fit; else shortened to fit).
        stream: answer as server-sent events.
        include_usage: with ``stream``, a last chunk carries the token counts.
    """

    model: str
    system: str | None
    turns: list[dict[str, str]]
    media: list[MediaRef]
    settings: GenerationSettings
    stop: list[str]
    explicit_max_tokens: bool = False
    stream: bool = False
    include_usage: bool = False


def parse_request(payload: Any, limits: ServeLimits, parts: PartTypes | None = None) -> ChatJob:
    """Validate a decoded JSON body.

    Args:
        payload: the decoded body.
        limits: what one request may ask for.
        parts: the part types the served model takes (default: ``image_url`` and ``video_url``).

    Raises:
        ApiError: 400 naming the field at fault.
    """
    try:
        request = ChatCompletionRequest.model_validate(payload)
    except ValidationError as err:
        first = err.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise bad_request(f"{where}: {first['msg']}", "invalid_request", where or None) from err
    if request.n != 1:
        raise bad_request(f"n={request.n}: this server returns one choice per request (n=1)", "unsupported_n", "n")
    asked = request.max_completion_tokens or request.max_tokens
    if asked is not None and asked > limits.max_tokens:
        raise bad_request(f"max_tokens={asked} exceeds this server's limit of {limits.max_tokens} (--max-tokens)",
                          "max_tokens_too_large", "max_tokens")  # fmt: skip
    temperature = limits.default_temperature if request.temperature is None else request.temperature
    settings = GenerationSettings(asked or limits.max_tokens, temperature, request.top_p or 1.0, request.seed)
    system, turns, media = _conversation(request.messages, parts or PartTypes())
    _check_media_counts(media, limits)
    stop = [request.stop] if isinstance(request.stop, str) else list(request.stop or [])
    include_usage = bool(request.stream_options and request.stream_options.include_usage)
    stop = [s for s in stop if s]
    return ChatJob(
        request.model, system, turns, media, settings, stop, asked is not None, request.stream, include_usage
    )


def _conversation(messages: list[Message], parts: PartTypes) -> tuple[str | None, list[dict[str, str]], list[MediaRef]]:
    system: list[str] = []
    turns: list[dict[str, str]] = []
    media: list[MediaRef] = []
    for i, message in enumerate(messages):
        if message.role in {"system", "developer"}:
            if turns:
                raise bad_request("system messages must come before the conversation", param=f"messages[{i}]")
            system.append(_text_only(message, i))
            continue
        if message.role not in {"user", "assistant"}:
            raise bad_request(f"role {message.role!r} is not supported (system, user, assistant)",
                              param=f"messages[{i}].role")  # fmt: skip
        role = HUMAN if message.role == "user" else GPT
        text, items = _user_content(message, i, parts) if role == HUMAN else (_text_only(message, i), [])
        media += items
        if turns and turns[-1]["from"] == role:
            turns[-1]["value"] += "\n" + text
        else:
            turns.append({"from": role, "value": text})
    if not turns or turns[-1]["from"] != HUMAN:
        raise bad_request("the last message must be a user message (the one to answer)", param="messages")
    if turns[0]["from"] != HUMAN:
        turns.pop(0)  # an assistant greeting before any question: the template has no place for it
    return ("\n".join(system) if system else None), turns, media


def _text_only(message: Message, index: int) -> str:
    if isinstance(message.content, list):
        if any(part.type != "text" for part in message.content):
            raise bad_request(f"{message.role} messages carry text only", param=f"messages[{index}].content")
        return "\n".join(part.text or "" for part in message.content)
    return message.content or ""


def _user_content(message: Message, index: int, parts: PartTypes) -> tuple[str, list[MediaRef]]:
    if not isinstance(message.content, list):
        return message.content or "", []
    texts, items = [], []
    for j, part in enumerate(message.content):
        param = f"messages[{index}].content[{j}]"
        if part.type == "text":
            texts.append(part.text or "")
        elif part.type in parts.routes:
            url = declared_part_url(part.type, (part.model_extra or {}).get(part.type), param)
            items.append(MediaRef(parts.routes[part.type], url, param))
        elif (media := part.media()) is not None:
            items.append(MediaRef(media[0], media[1], param))
        else:
            raise bad_request(f"content part type {part.type!r} is not supported here; this model takes "
                              f"{parts.describe()}", "unsupported_content", param)  # fmt: skip
    return with_markers("\n".join(texts), [parts.modality(item.modality) for item in items]), items


def _check_media_counts(media: list[MediaRef], limits: ServeLimits) -> None:
    if len(media) > limits.max_media_items:
        raise bad_request(f"{len(media)} media items; this server takes at most {limits.max_media_items} per request",
                          "too_many_media", "messages")  # fmt: skip


def check_frames(media: list[MediaRef], frames_per_video: int, limits: ServeLimits) -> None:
    """Refuse a request whose images and video frames together exceed ``limits.max_frames``."""
    frames = sum(frames_per_video if item.modality == "video" else 1 for item in media)
    if frames > limits.max_frames:
        detail = f"{frames} visual frames ({frames_per_video} per video, 1 per image)"
        raise bad_request(
            f"{detail} exceed this server's limit of {limits.max_frames} per request (--max-frames)",
            "too_many_frames",
            "messages",
        )
