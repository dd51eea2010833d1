"""The data module's settings, in four groups a recipe overrides at any depth (``data.init_args.loader.batch_size``,
``--data.loader.batch_size 8``): where the samples are (:class:`DataSources`), in what order training reads them
(:class:`Sampling`), how media are decoded (:class:`MediaSettings`) and how batches are formed and delivered
(:class:`LoaderSettings`). jsonargparse validates every field: a misspelt one fails when the recipe is parsed.
:func:`training_strategies` turns them into the training stream's sampler and batcher; the checks and the plain
form a checkpoint records are here too.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from transformers import PreTrainedTokenizerBase

from lvlm.core.specs import spec_of
from lvlm.data.batchers import Batcher, FixedSizeBatcher, PackedBatcher
from lvlm.data.decoding import available_backends
from lvlm.data.length_index import ShardLengths
from lvlm.data.packed_pass import Bin
from lvlm.data.samplers import PackedSinglePass, Sampler, SinglePass, WeightedResampler
from lvlm.data.shard_io import expand_pattern
from lvlm.data.single_pass import ShardKeys
from lvlm.data.sources import DataSource
from lvlm.models.io.tokenizer import load_tokenizer

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DataSources:
    """``data.sources``: the shards of each split.

    Attributes:
        train: :class:`lvlm.data.sources.DataSource` entries (``{pattern, weight, format, prompt}``): brace/glob
            paths, manifests written by ``lvlm shards`` (``DIR/manifest.json``), fsspec or ``pipe:`` URLs; a
            ``format: captions`` source holds caption pairs (img2dataset / video2dataset).
        val: the fixed validation set (weights ignored).
        test: the fixed test set.
        predict_split: which fixed set ``predict_dataloader`` serves (``val`` or ``test``).
    """

    train: Sequence[DataSource] = ()
    val: Sequence[DataSource] = ()
    test: Sequence[DataSource] = ()
    predict_split: Literal["val", "test"] = "val"


@dataclass(frozen=True)
class Sampling:
    """``data.sampling``: which training samples each epoch reads, in what order (:mod:`lvlm.data.samplers`).

    Attributes:
        mode: ``resampled``: every (rank, worker) draws shards with replacement from the weighted sources,
            forever, and an epoch is ``batches_per_epoch`` batches (about a third of the shards go unseen in one
            epoch's worth of samples). ``single_pass``: every training sample exactly once per epoch over all
            ranks and workers (weights ignored), the same batch count on every rank, shards shuffled per epoch
            (:mod:`lvlm.data.single_pass`); the epoch length comes from the data.
        batches_per_epoch: training batches per epoch on every rank (resampled only).
        samples_per_epoch: training samples per epoch over all ranks, used when ``batches_per_epoch`` is None
            (resampled only).
        seed: base seed of shard sampling, mixing, shuffling and augmentation (mixed with epoch, rank, worker).
        shuffle_buffer: the sample shuffle buffer, in samples. It holds encoded media (a few MB per video), per
            worker: mind the memory with long videos.
        group_by_modality_length: batches of similar length, multimodal and text-only apart (the original's
            ``group_by_modality_length``).
    """

    mode: Literal["resampled", "single_pass"] = "resampled"
    batches_per_epoch: int | None = None
    samples_per_epoch: int | None = None
    seed: int = 0
    shuffle_buffer: int = 256
    group_by_modality_length: bool = False

    def __post_init__(self) -> None:
        if self.mode not in ("resampled", "single_pass"):
            raise ValueError(f"data.sampling.mode must be 'resampled' or 'single_pass', got {self.mode!r}")
        if self.mode == "single_pass" and (self.batches_per_epoch is not None or self.samples_per_epoch is not None):
            raise ValueError(
                "data.sampling: mode 'single_pass' takes the epoch length from the data; "
                "leave batches_per_epoch and samples_per_epoch unset"
            )


@dataclass(frozen=True)
class MediaSettings:
    """``data.media``: how images and videos are decoded and fed.

    Attributes:
        num_frames: frames sampled per video.
        augment: random crops in training.
        dtype: ``uint8`` (default): batches carry 0-255 pixels that the towers normalise (on the GPU in training):
            a quarter of the bytes through worker queues and pinned memory. ``float32``: pixels normalised with the
            towers' mean and std in the workers.
        video_backend: ``pyav`` or ``decord``; None uses ``lvlm.data.decoding.default_backend()`` (PyAV). Both
            give the same frames; PyAV skips disposable H.264 pictures and is faster.
    """

    num_frames: int = 8
    augment: bool = False
    dtype: Literal["uint8", "float32"] = "uint8"
    video_backend: str | None = None

    def __post_init__(self) -> None:
        if self.dtype not in ("uint8", "float32"):
            raise ValueError(f"data.media.dtype must be 'uint8' or 'float32', got {self.dtype!r}")


@dataclass(frozen=True)
class LoaderSettings:
    """``data.loader``: how batches are formed (:mod:`lvlm.data.batchers`) and delivered on each rank.

    Attributes:
        batch_size: samples per batch per rank.
        max_tokens_per_batch: pack training samples into micro-batches of at most this many tokens (one row,
            per-sample position ids, no padding: :mod:`lvlm.data.packing`) instead of ``batch_size`` padded
            samples; at least ``data.max_length``. Resampled: ``batches_per_epoch`` then counts micro-batches (and
            ``samples_per_epoch`` converts with ``batch_size`` as the expected samples per micro-batch). Single
            pass: every sample once per epoch in planned micro-batches, the same count on every rank, at most one
            zero-loss filler per rank (:mod:`lvlm.data.packed_pass`); ``batch_size`` is then unused.
        num_workers: DataLoader workers per rank.
        prefetch_factor: batches prefetched per worker (with workers only).
        pin_memory: pin batches in page-locked memory.
        multiprocessing_context: start method of the workers (``fork``, ``forkserver``, ``spawn``); None keeps
            Python's default. Rank and world size reach workers through the dataset, whatever the method.
    """

    batch_size: int = 4
    max_tokens_per_batch: int | None = None
    num_workers: int = 0
    prefetch_factor: int | None = 2
    pin_memory: bool = False
    multiprocessing_context: str | None = None


def check_settings(
    sampling: Sampling, media: MediaSettings, loader: LoaderSettings, train: Sequence[Any], max_length: int
) -> None:
    """Settings that only make sense together, checked before any shard is read."""
    no_length = sampling.batches_per_epoch is None and sampling.samples_per_epoch is None
    if sampling.mode == "resampled" and no_length and train:
        raise ValueError("data.sampling: set batches_per_epoch or samples_per_epoch (the stream is endless)")
    max_tokens = loader.max_tokens_per_batch
    if max_tokens is not None and max_tokens < max_length:
        raise ValueError(
            f"data.loader.max_tokens_per_batch ({max_tokens}) must be at least data.max_length ({max_length})"
        )
    backend = media.video_backend
    if backend is not None and backend not in available_backends():
        raise ValueError(f"data.media.video_backend {backend!r} is not installed; installed: {available_backends()}")


def check_bad_sample_limit(limit: int | None) -> None:
    """``data.max_consecutive_bad_samples`` is 1 or more, or None."""
    if limit is not None and limit < 1:
        raise ValueError(f"data.max_consecutive_bad_samples must be 1 or more, or None: {limit}")


def training_strategies(
    sampling: Sampling,
    loader: LoaderSettings,
    train: Sequence[Mapping[str, Any]],
    train_index: Callable[[], Sequence[ShardKeys]],
    packed_index: Callable[[], tuple[Sequence[ShardLengths], Sequence[Sequence[Bin]]]],
) -> tuple[Sampler, Batcher]:
    """The training stream's sampler and batcher: from ``sampling.mode`` and ``loader.max_tokens_per_batch``.

    Args:
        sampling, loader: the settings.
        train: the training sources as plain dicts (``pattern``, ``weight``).
        train_index: every shard's sample keys (single pass), read only when needed.
        packed_index: every sample's token length and the micro-batches they pack into (packed single pass).
    """
    max_tokens, grouped = loader.max_tokens_per_batch, sampling.group_by_modality_length
    batcher: Batcher = (
        FixedSizeBatcher(loader.batch_size, grouped) if max_tokens is None else PackedBatcher(max_tokens, grouped)
    )
    if sampling.mode == "single_pass" and max_tokens is not None:
        index, bins = packed_index()
        return PackedSinglePass(tuple(index), tuple(tuple(b) for b in bins)), batcher
    if sampling.mode == "single_pass":
        return SinglePass(tuple(train_index()), loader.batch_size, sampling.shuffle_buffer), batcher
    sources = tuple((tuple(expand_pattern(s["pattern"])), float(s.get("weight", 1.0)), s["pattern"]) for s in train)
    return WeightedResampler(sources, sampling.shuffle_buffer), batcher


def plain_settings(arguments: Mapping[str, Any]) -> dict[str, Any]:
    """The data module's arguments as plain data, what a checkpoint records (it is read with ``weights_only``).

    The linked objects are not settings of the data: the modalities are the model's (recorded with it), a tokenizer
    object is recorded by the path it was read from, and a template by its ``{class_path, init_args}``.
    """
    settings = {k: v for k, v in arguments.items() if k not in {"self", "__class__", "modalities"}}
    tokenizer = settings.get("tokenizer")
    if not isinstance(tokenizer, str):
        settings["tokenizer"] = getattr(tokenizer, "name_or_path", None) or None
    return spec_of(settings)


def load_data_tokenizer(tokenizer: str | PreTrainedTokenizerBase) -> PreTrainedTokenizerBase:
    """``data.tokenizer`` read (a directory or hub id, never remote code) or taken as given, with a pad token."""
    if not isinstance(tokenizer, str):
        loaded = tokenizer
    elif not tokenizer:
        raise ValueError("LVLMDataModule: give `tokenizer` (a directory, a hub id, or a tokenizer object)")
    else:
        loaded = load_tokenizer(os.path.expanduser(tokenizer))
    if loaded.pad_token_id is None and loaded.unk_token is not None:
        log.info("the tokenizer has no pad token: padding with %r, as the original does for Vicuna", loaded.unk_token)
        loaded.pad_token = loaded.unk_token
    if loaded.pad_token_id is None:
        raise ValueError(f"tokenizer {tokenizer!r:.80} has no pad token and no unk token; set tokenizer.pad_token")
    return loaded
