"""``LvlmModel``: lmms-eval's model interface over an lvlm checkpoint (images, videos, batches, likelihoods).

``--model_args`` (``key=value,...``):

- ``pretrained`` (required): a saved lvlm model directory (lvlm, transformers ``-hf`` or original layout).
- ``num_frames``: frames sampled from every video (default: as many as training used).
- ``template``: chat template, only for checkpoints that record none; ``image_mode``: ``pad`` or ``crop``
  (default: what the model was trained with).
- ``dtype``: ``float32``, ``bfloat16`` or ``float16`` (default: bfloat16 on GPU, float32 on CPU).
- ``max_new_tokens``: answer length when a task's ``generation_kwargs`` give none (default 256).

``--batch_size N`` batches prompts: ``generate_until`` runs one left-padded batch of the generation engine per
batch of requests with the same generation settings (answers equal one-by-one greedy decoding; each ends at its
task's ``until`` strings, checked token by token), ``loglikelihood`` one forward pass per batch. ``--device``
picks the device (default: ``cuda`` when available, else ``cpu``).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from typing import Any

import torch
from lmms_eval.api.instance import GenerationResult, Instance
from lmms_eval.api.model import lmms
from tqdm import tqdm

from lvlm.apps.lmms.requests import (
    Media,
    UnsupportedVisualError,
    flatten_visuals,
    generation_prompt,
    generation_settings,
    load_visuals,
    scoring_prompt,
)
from lvlm.data.decoding.errors import MediaDecodeError
from lvlm.data.sample_errors import BadSampleError
from lvlm.inference.batch_generate import generate_batch
from lvlm.inference.media_files import MissingMediaFileError, UnsupportedMediaError
from lvlm.inference.scoring import score_answers
from lvlm.inference.session import InferenceSession, load_session

log = logging.getLogger(__name__)

DTYPES = ("float32", "bfloat16", "float16")
UNANSWERABLE = (BadSampleError, MediaDecodeError, MissingMediaFileError, UnsupportedMediaError, UnsupportedVisualError)


def passed_through(pair: tuple[float, bool]) -> GenerationResult:
    """A ``(score, is_greedy)`` pair that lmms-eval's evaluator hands to the task unchanged.

    lmms-eval 0.7.3 passes every model output through ``unwrap_generation_output``, which turns a tuple that
    does not start with a string into its ``str()``; multiple-choice scoring then fails on ``"(-1.2, False)"``.
    A ``GenerationResult`` is unwrapped to its ``text`` as it is, so the pair arrives intact.
    """
    return GenerationResult(text=pair, token_counts=None)  # type: ignore[arg-type]


def default_device(device: str | None) -> str:
    """The device asked for, else ``cuda`` (this process's GPU under a multi-process launch) or ``cpu``."""
    if device:
        return device
    if not torch.cuda.is_available():
        return "cpu"
    return f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}"


class LvlmModel(lmms):
    """An lvlm checkpoint as an lmms-eval "simple" model (see the module docstring for ``--model_args``)."""

    is_simple = True

    def __init__(
        self,
        pretrained: str,
        num_frames: int | None = None,
        template: str | None = None,
        image_mode: str | None = None,
        dtype: str | None = None,
        max_new_tokens: int = 256,
        batch_size: int | str = 1,
        max_batch_size: int | None = None,
        device: str | None = None,
    ) -> None:
        super().__init__()
        if not str(batch_size).isdigit() or int(batch_size) < 1:
            raise ValueError(f"lvlm needs a whole --batch_size of at least 1, got {batch_size!r}")
        self._device = torch.device(default_device(device))
        if dtype is None:
            dtype = "float32" if self._device.type == "cpu" else "bfloat16"
        if dtype not in DTYPES:
            raise ValueError(f"dtype must be one of {', '.join(DTYPES)}, got {dtype!r}")
        self.session: InferenceSession = load_session(
            pretrained,
            template,
            num_frames=int(num_frames) if num_frames else None,
            image_mode=image_mode,
            torch_dtype=getattr(torch, dtype),
            device=self._device,
        )
        self.batch_size_per_gpu = int(batch_size)
        self.max_new_tokens = int(max_new_tokens)
        self._media_cache: dict[tuple[Any, ...], Media] = {}

    @property
    def device(self) -> torch.device:
        return self._device

    @property
    def batch_size(self) -> int:
        return self.batch_size_per_gpu

    def _media(self, doc_to_visual: Callable | None, task: str, split: str, doc_id: int) -> Media:
        """The document's visuals, decoded once for all requests of the same document (multiple choice)."""
        cache_key = (task, split, doc_id)
        if cache_key not in self._media_cache:
            self._media_cache.clear()
            visuals = doc_to_visual(self.task_dict[task][split][doc_id]) if doc_to_visual else []
            self._media_cache[cache_key] = load_visuals(self.session, flatten_visuals(visuals), f"{task}/{doc_id}")
        return self._media_cache[cache_key]

    def generate_until(self, requests: list[Instance]) -> list[str]:
        """Greedy (or sampled) answers, batched by generation settings, each ended at its task's ``until``."""
        answers = [""] * len(requests)
        groups: dict[Any, list[int]] = {}
        for index, request in enumerate(requests):
            settings = generation_settings(request.args[1], self.max_new_tokens)
            groups.setdefault(settings, []).append(index)
        skipped = 0
        progress = tqdm(total=len(requests), disable=self.rank != 0, desc="lvlm generating")
        for settings, indices in groups.items():
            for start in range(0, len(indices), self.batch_size):
                prepared = []
                for index in indices[start : start + self.batch_size]:
                    context, gen_kwargs, doc_to_visual, doc_id, task, split = requests[index].args
                    key = f"{task}/{doc_id}"
                    try:
                        media = self._media(doc_to_visual, task, split, doc_id)
                        prepared.append((index, generation_prompt(self.session, context, media, key)))
                    except UNANSWERABLE as err:
                        skipped += 1
                        log.warning("lvlm: %s gets an empty answer: %s", key, err)
                if prepared:
                    texts = generate_batch(self.session, [sample for _, sample in prepared], settings)
                    for (index, _), text in zip(prepared, texts):
                        answers[index] = text
                progress.update(len(indices[start : start + self.batch_size]))
        progress.close()
        if skipped:
            log.warning("lvlm: %d of %d requests could not be asked and got empty answers", skipped, len(requests))
        return answers

    def loglikelihood(self, requests: list[Instance]) -> list[GenerationResult]:
        """``(negative log-likelihood of the continuation, whether greedy decoding gives it)`` per request.

        The context is the user turn (with the document's visuals), the continuation the assistant's answer;
        the first number is minus the sum of the answer tokens' log-probabilities. Lower is more likely because
        lmms-eval's scorers pick the *smallest* value: ``multiple_choice`` tasks take ``np.argmin`` ("we return
        the actual loss in many model loglikelihood", ``lmms_eval/api/task.py``) and the ``*_mcppl`` tasks the
        minimum. A request that cannot be scored (missing media, too long) stops the run with its reason. Each
        pair is wrapped by :func:`passed_through`.
        """
        results: list[GenerationResult] = []
        progress = tqdm(total=len(requests), disable=self.rank != 0, desc="lvlm scoring")
        for start in range(0, len(requests), self.batch_size):
            samples = []
            for request in requests[start : start + self.batch_size]:
                context, continuation, *rest = request.args
                doc_to_visual, doc_id, task, split = rest if rest else (None, request.doc_id, request.task_name, None)
                media = self._media(doc_to_visual, task, split, doc_id) if doc_to_visual else []
                samples.append(scoring_prompt(self.session, context, continuation, media, f"{task}/{doc_id}"))
            scores = score_answers(self.session, samples)
            results.extend(passed_through((-score.logprob, score.is_greedy)) for score in scores)
            progress.update(len(samples))
        progress.close()
        return results

    def generate_until_multi_round(self, requests: list[Instance]) -> list[list[str]]:
        """Rounds of answers per request: round 0 asks the context; later rounds ask what the task's
        ``doc_to_text(doc, previous_output=..., round_idx=..., previous_round_info=...)`` returns, until it
        signals the end. Each round is a fresh prompt, as in lmms-eval's own models."""
        results = []
        for request in tqdm(requests, disable=self.rank != 0, desc="lvlm multi-round"):
            context, gen_kwargs, doc_to_visual, doc_to_text, doc_id, task, split = request.args
            doc = self.task_dict[task][split][doc_id]
            settings = generation_settings(gen_kwargs, self.max_new_tokens)
            key = f"{task}/{doc_id}"
            visuals, rounds, info, round_idx = flatten_visuals(doc_to_visual(doc)), [], None, 0
            while True:
                if round_idx:
                    visuals, context, done, rounds, info = doc_to_text(
                        doc, previous_output=list(rounds), round_idx=round_idx, previous_round_info=info
                    )
                    visuals, rounds = flatten_visuals(visuals), list(rounds)
                    if done:
                        break
                sample = generation_prompt(self.session, context, load_visuals(self.session, visuals, key), key)
                rounds.append(generate_batch(self.session, [sample], settings)[0])
                round_idx += 1
            results.append(rounds)
        return results
