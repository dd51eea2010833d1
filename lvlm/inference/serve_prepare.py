"""A validated request → a prompt ready for the scheduler: media fetched and decoded, prompt tokenized.

Media go through :func:`lvlm.inference.media_files.load_media` and the prompt through
:func:`lvlm.inference.prompts.prepare_prompt`, the same code ``lvlm predict`` and ``lvlm chat`` use.
"""

from __future__ import annotations

import dataclasses
import threading
from dataclasses import dataclass

import torch

from lvlm.data.collate import ProcessedSample
from lvlm.data.decoding.errors import MediaDecodeError
from lvlm.data.sample_errors import BadSampleError, SampleTooLongError
from lvlm.inference.media_files import load_media
from lvlm.inference.prompts import prepare_prompt
from lvlm.inference.serve_errors import bad_request
from lvlm.inference.serve_media import read_media_url
from lvlm.inference.serve_parts import PartTypes
from lvlm.inference.serve_requests import ChatJob, ServeLimits, check_frames
from lvlm.inference.session import InferenceSession


@dataclass
class PreparedPrompt:
    """A tokenized prompt with its media, and how many tokens its answer may take."""

    sample: ProcessedSample
    max_tokens: int

    @property
    def prompt_tokens(self) -> int:
        return int(self.sample.input_ids.shape[0])


def load_job_media(session: InferenceSession, job: ChatJob, limits: ServeLimits) -> list[tuple[str, torch.Tensor]]:
    """Fetch and decode every media item of a request.

    Raises:
        ApiError: a refused, oversized or undecodable item (400/403), or a modality this model does not take.
    """
    check_frames(job.media, session.num_frames, limits)
    loaded = []
    for ref in job.media:
        if ref.modality not in session.modalities:
            takes = PartTypes.of(session.modalities).describe()
            raise bad_request(f"this model takes no {ref.modality}s; it takes {takes}", "unsupported_media", ref.param)
        data = read_media_url(ref.url, limits.media, ref.param)
        try:
            loaded.append((ref.modality, load_media(session, ref.modality, data, key=ref.param)))
        except MediaDecodeError as err:
            raise bad_request(f"{ref.param}: cannot decode this {ref.modality}: {err.reason}", "invalid_media",
                              ref.param) from err  # fmt: skip
    return loaded


def prepare_job(
    session: InferenceSession, job: ChatJob, limits: ServeLimits, tokenizer_lock: threading.Lock, key: str
) -> PreparedPrompt:
    """Media and prompt of a request, with its answer length checked against the model's positions.

    Raises:
        ApiError: 400 for bad media, a prompt that does not fit (``context_length_exceeded``) or a conversation
            whose markers and media disagree.
    """
    media = load_job_media(session, job, limits)
    view = session
    if job.system is not None:  # the same template class with the request's system prompt
        template = type(session.template)(**{**session.template.init_args(), "system": job.system})
        view = dataclasses.replace(session, template=template)
    try:
        with tokenizer_lock:
            sample = prepare_prompt(view, job.turns, media, key=key)
    except SampleTooLongError as err:
        raise bad_request(f"{err.detail}; this model has {session.max_length} positions (max_position_embeddings)",
                          "context_length_exceeded", "messages") from err  # fmt: skip
    except BadSampleError as err:
        raise bad_request(err.detail, "invalid_prompt", "messages") from err
    room = session.max_length - int(sample.input_ids.shape[0])
    asked = job.settings.max_new_tokens
    if job.explicit_max_tokens and asked > room:
        raise bad_request(f"the prompt takes {sample.input_ids.shape[0]} of the model's {session.max_length} "
                          f"positions; max_tokens={asked} does not fit (at most {room})",
                          "context_length_exceeded", "max_tokens")  # fmt: skip
    return PreparedPrompt(sample, max(1, min(asked, room)))
