"""lmms-eval requests → lvlm prompts: visuals to media tensors, ``gen_kwargs`` to settings, stop strings.

A "simple" lmms-eval request carries ``(context, gen_kwargs | continuation, doc_to_visual, doc_id, task, split)``;
``doc_to_visual(doc)`` returns the document's visuals: PIL images for image tasks, file paths for video tasks
(a path may also be an image file or a folder of frames). Any number of each is taken, in the order given;
the prompt gets one marker per item (videos first, then images, as :mod:`lvlm.inference.prompts` places them)
unless the context already holds ``<image>``/``<video>`` markers.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Mapping
from typing import Any

import torch
from PIL import Image

from lvlm.data.collate import ProcessedSample
from lvlm.data.templates import GPT
from lvlm.inference.batch_generate import GenerationSettings
from lvlm.inference.media_files import check_media_file, load_media
from lvlm.inference.prompts import prepare_prompt, prepare_scoring_prompt, question_conversation
from lvlm.inference.session import InferenceSession

log = logging.getLogger(__name__)

Media = list[tuple[str, torch.Tensor]]


class UnsupportedVisualError(ValueError):
    """A visual that is neither a PIL image nor a path to an image, a video or a folder of frames."""


def flatten_visuals(visuals: Any) -> list[Any]:
    """``doc_to_visual``'s result as a flat list (None and empty entries dropped, nested lists opened)."""
    if visuals is None:
        return []
    if not isinstance(visuals, (list, tuple)):
        return [visuals]
    flat: list[Any] = []
    for item in visuals:
        flat.extend(flatten_visuals(item))
    return flat


def load_visuals(session: InferenceSession, visuals: Iterable[Any], key: str) -> Media:
    """Decode and transform every visual into ``(modality, tensor)``: images ``[3, s, s]``, videos ``[t, 3, s, s]``.

    Raises:
        UnsupportedVisualError: audio dicts, arrays or other objects lvlm has no modality for.
        MissingMediaFileError, UnsupportedMediaError, MediaDecodeError: bad files (the message names them).
    """
    media: Media = []
    for visual in visuals:
        if isinstance(visual, Image.Image):
            media.append(("image", load_media(session, "image", visual, key=key)))
        elif isinstance(visual, (str, os.PathLike)):
            modality = check_media_file(visual, key)
            media.append((modality, load_media(session, modality, visual, key=key)))
        else:
            raise UnsupportedVisualError(
                f"{key}: lvlm takes PIL images and image/video paths, got a {type(visual).__name__}"
            )
    return media


def generation_prompt(session: InferenceSession, context: str, media: Media, key: str) -> ProcessedSample:
    """The generation prompt of one request: the context as the user turn, one marker per media item."""
    conversation = question_conversation(context, [session.modality(modality) for modality, _ in media])
    return prepare_prompt(session, conversation, media, key=key)


def scoring_prompt(session: InferenceSession, context: str, continuation: str, media: Media, key: str):
    """The prompt of one likelihood request: the context as the user turn, the continuation as the answer.

    The template puts its own separator before an answer (``"ASSISTANT: A"``), so the continuation's leading
    whitespace (lmms-eval's ``target_delimiter``) is dropped rather than doubled.
    """
    conversation = [*question_conversation(context, [session.modality(modality) for modality, _ in media])]
    conversation.append({"from": GPT, "value": continuation.lstrip()})
    return prepare_scoring_prompt(session, conversation, media, key=key)


def generation_settings(gen_kwargs: Mapping[str, Any], default_max_new_tokens: int) -> GenerationSettings:
    """lmms-eval ``gen_kwargs`` → settings: greedy unless ``do_sample`` with a positive temperature.

    ``num_beams`` above 1 is not supported by lvlm's batched generation and is refused.
    """
    if int(gen_kwargs.get("num_beams") or 1) > 1:
        beams = gen_kwargs["num_beams"]
        raise ValueError(f"lvlm generates greedily or by sampling; num_beams={beams} is not supported")
    temperature = float(gen_kwargs.get("temperature") or 0.0)
    if gen_kwargs.get("do_sample") is False:
        temperature = 0.0
    top_p = gen_kwargs.get("top_p")
    return GenerationSettings(
        max_new_tokens=int(gen_kwargs.get("max_new_tokens") or default_max_new_tokens),
        temperature=temperature,
        top_p=float(top_p) if top_p else 1.0,
        stop=stop_strings(gen_kwargs),
    )


def stop_strings(gen_kwargs: Mapping[str, Any]) -> list[str]:
    """lmms-eval's ``until`` (a string or a list of strings) as a list."""
    until = gen_kwargs.get("until") or []
    return [until] if isinstance(until, str) else [s for s in until if s]
