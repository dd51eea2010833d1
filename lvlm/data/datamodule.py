"""`LVLMDataModule`: WebDataset shards → model-ready batches for training, validation, test and prediction.

Batch format (see `lvlm.data.collate.Collator`): `input_ids`, `attention_mask`, `labels` (not for predict)
`[b, l]`; one stacked tensor per modality with media in the batch, under its input name (`images`
`[n_i, 3, s, s]`, `videos` `[n_v, t, 3, s, s]`, a plugin's `depths`;
uint8 0-255 by default, normalised by the towers; float32 normalised with `media_dtype="float32"`); `keys`,
`modalities`, `meta` lists.

- train: resampled, weighted mix of sources, exactly `batches_per_epoch` batches per rank (`TrainLoader`); or
  (`sampling="single_pass"`) every sample once per epoch, the same batch count on every rank. With
  `max_tokens_per_batch`, packed rows (`lvlm.data.packing`: `input_ids`, `position_ids`, `labels` `[1, l]`);
  in the packed single pass a rank may end an epoch with one copy marked `filler: True` (zero loss).
- val / test: a fixed finite set, every sample once over all ranks, same batch count on every rank, right
  padding (validation loss).
- predict: the val (or test) set as generation prompts ending with `"ASSISTANT:"`, left padding,
  `meta[i]["reference"]` holding the expected answer.
Bad samples are skipped, counted and written to `run_dir/bad_samples.*.jsonl` (`bad_sample_counts()`); training
stops after `max_consecutive_bad_samples` in a row.
"""

from __future__ import annotations

import logging
import os
import tempfile
import uuid
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import lightning.pytorch as pl
import torch.distributed as dist
import torch.utils.data
from transformers import PreTrainedTokenizerBase

from lvlm.core.specs import spec_of
from lvlm.data.captions import caption_prompts, check_source_formats
from lvlm.data.collate import Collator
from lvlm.data.decoding import available_backends
from lvlm.data.eval_stream import EvalStream, build_index
from lvlm.data.length_index import ShardLengths, length_index
from lvlm.data.media import modality_list
from lvlm.data.packed_pass import Bin, index_bins, micro_batches_per_rank
from lvlm.data.packing import PackingCollator
from lvlm.data.report import BadSampleReport, count_bad_samples
from lvlm.data.sample_pipeline import SampleProcessor
from lvlm.data.shard_io import expand_pattern, list_keys
from lvlm.data.single_pass import ShardKeys, batches_per_rank
from lvlm.data.sources import DataSource, source_dicts
from lvlm.data.templates import ChatTemplate, get_template
from lvlm.data.train_stream import TrainLoader, TrainStream
from lvlm.models.io.tokenizer import load_tokenizer
from lvlm.models.modality import Modality

log = logging.getLogger(__name__)


class LVLMDataModule(pl.LightningDataModule):
    """Streams Video-LLaVA style WebDataset shards.

    Args:
        train_sources: `[{"pattern": str, "weight": float}]` (:class:`lvlm.data.sources.DataSource`, typed); patterns
            are brace/glob paths, manifests written by
            `lvlm shards` (`DIR/manifest.json`), fsspec or `pipe:` URLs. A source with `"format": "captions"`
            holds caption pairs (img2dataset/video2dataset: `key.jpg|mp4` + `key.txt`), turned into a one-turn
            conversation asking `"prompt"` (default `lvlm.data.captions.DEFAULT_CAPTION_PROMPT`).
        val_sources: Sources of the fixed validation set (weights ignored).
        test_sources: Sources of the fixed test set.
        tokenizer: A directory or hub id for `AutoTokenizer.from_pretrained` (never with remote code), or a
            tokenizer object.
        template: Chat template, or a built-in name (`vicuna_v1`, `llava_v1`, `plain`); `lvlm fit` links the model's.
        modalities: The model's modalities by name (`lvlm fit` links `LVLMModule.modalities` here): their
            placeholders, shard members, decoding, transforms and batching. None: text only.
        num_frames: Frames per video.
        max_length: Maximum tokens per sample, visual tokens included.
        batch_size: Samples per batch per rank.
        max_tokens_per_batch: Pack training samples into micro-batches of at most this many tokens (one row,
            per-sample position ids, no padding: `lvlm.data.packing`) instead of `batch_size` padded samples;
            at least `max_length`. Resampled: `batches_per_epoch` then counts packed micro-batches (and
            `samples_per_epoch` converts with `batch_size` as the expected samples per micro-batch). Single pass:
            every sample once per epoch in planned micro-batches, the same count on every rank, at most one
            zero-loss filler per rank (`lvlm.data.packed_pass`); `batch_size` is then unused.
        num_workers: DataLoader workers per rank.
        prefetch_factor: Batches prefetched per worker (with workers only).
        pin_memory: Pin batches in page-locked memory.
        multiprocessing_context: Start method of the DataLoader workers (`fork`, `forkserver`, `spawn`); None
            keeps Python's default. Rank and world size reach workers through the dataset, whatever the method.
        sampling: `"resampled"` (default): every (rank, worker) draws shards with replacement from the weighted
            sources, forever, and an epoch is `batches_per_epoch` batches: about a third of the shards go unseen in
            one epoch's worth of samples. `"single_pass"`: every training sample exactly once per epoch over all
            ranks and workers (weights ignored), the same batch count on every rank, shards shuffled per epoch
            (see `lvlm.data.single_pass`); the epoch length comes from the data.
        samples_per_epoch: Training samples per epoch over all ranks (used if `batches_per_epoch` is None;
            resampled only).
        batches_per_epoch: Training batches per epoch on every rank (resampled only).
        seed: Base seed of shard sampling, mixing, shuffling and augmentation (mixed with epoch, rank, worker).
        shuffle_buffer: Training sample shuffle buffer, in samples. It holds encoded media (a few MB per video),
            per worker: mind the memory with long videos.
        group_by_modality_length: Batches of similar length, multimodal and text-only apart (spec §5.3).
        augment: Random crops in training.
        media_dtype: `"uint8"` (default): batches carry 0-255 pixels that the towers normalise (on the GPU in
            training): a quarter of the bytes through worker queues and pinned memory, and no normalisation in
            the workers. `"float32"`: pixels normalised with the towers' mean and std in the workers.
        video_backend: `"pyav"` or `"decord"`; None uses `lvlm.data.decoding.default_backend()` (PyAV). Both
            give the same frames; PyAV skips disposable H.264 pictures and is faster.
        run_dir: Where the bad-sample report goes; default the trainer's log dir.
        predict_split: Which fixed set `predict_dataloader` serves.
        rank: Global rank; default from the trainer or `torch.distributed` (never from the environment).
        world_size: Number of ranks; same default.
        max_consecutive_bad_samples: Stop training with an error naming the bad-sample report after this many bad
            samples in a row on one rank's stream (a worker's), with no usable sample between: shards whose every
            sample is bad would otherwise be read forever. None never stops.
    """

    def __init__(
        self,
        train_sources: Sequence[DataSource] = (),
        val_sources: Sequence[DataSource] = (),
        test_sources: Sequence[DataSource] = (),
        tokenizer: str | PreTrainedTokenizerBase = "",
        template: str | ChatTemplate = "vicuna_v1",
        modalities: Mapping[str, Modality] | None = None,
        num_frames: int = 8,
        max_length: int = 2048,
        batch_size: int = 4,
        max_tokens_per_batch: int | None = None,
        num_workers: int = 0,
        prefetch_factor: int | None = 2,
        pin_memory: bool = False,
        multiprocessing_context: str | None = None,
        sampling: Literal["resampled", "single_pass"] = "resampled",
        samples_per_epoch: int | None = None,
        batches_per_epoch: int | None = None,
        seed: int = 0,
        shuffle_buffer: int = 256,
        group_by_modality_length: bool = False,
        augment: bool = False,
        media_dtype: Literal["uint8", "float32"] = "uint8",
        video_backend: str | None = None,
        run_dir: str | None = None,
        predict_split: Literal["val", "test"] = "val",
        rank: int | None = None,
        world_size: int | None = None,
        max_consecutive_bad_samples: int | None = 1000,
    ) -> None:
        super().__init__()
        self.save_hyperparameters(_plain_settings(locals()))
        if sampling not in ("resampled", "single_pass"):
            raise ValueError(f"LVLMDataModule: sampling must be 'resampled' or 'single_pass', got {sampling!r}")
        if sampling == "resampled" and batches_per_epoch is None and samples_per_epoch is None and train_sources:
            raise ValueError("LVLMDataModule: set batches_per_epoch or samples_per_epoch (the stream is endless)")
        if sampling == "single_pass" and (batches_per_epoch is not None or samples_per_epoch is not None):
            raise ValueError(
                "LVLMDataModule: sampling 'single_pass' takes the epoch length from the data; "
                "leave batches_per_epoch and samples_per_epoch unset"
            )
        if max_tokens_per_batch is not None and max_tokens_per_batch < max_length:
            raise ValueError(
                f"LVLMDataModule: max_tokens_per_batch ({max_tokens_per_batch}) must be at least max_length "
                f"({max_length})"
            )
        self.sampling, self.max_tokens_per_batch = sampling, max_tokens_per_batch
        self._train_index: list[ShardKeys] | None = None
        self._packed: tuple[list[ShardLengths], list[list[Bin]]] | None = None
        self.train_sources, self.val_sources, self.test_sources = (
            source_dicts(train_sources),
            source_dicts(val_sources),
            source_dicts(test_sources),
        )
        check_source_formats([*self.train_sources, *self.val_sources, *self.test_sources])
        self.tokenizer = _load_tokenizer(tokenizer)
        self.template = get_template(template)
        self.modalities = modality_list(modalities)
        self.num_frames, self.max_length, self.batch_size = num_frames, max_length, batch_size
        self.num_workers, self.prefetch_factor, self.pin_memory = num_workers, prefetch_factor, pin_memory
        self.multiprocessing_context = multiprocessing_context
        self.samples_per_epoch, self._batches_per_epoch = samples_per_epoch, batches_per_epoch
        self.seed, self.shuffle_buffer = seed, shuffle_buffer
        self.group_by_modality_length, self.augment = group_by_modality_length, augment
        if video_backend is not None and video_backend not in available_backends():
            raise ValueError(
                f"LVLMDataModule: video_backend {video_backend!r} is not installed; installed: {available_backends()}"
            )
        self.video_backend = video_backend
        if media_dtype not in ("uint8", "float32"):
            raise ValueError(f"LVLMDataModule: media_dtype must be 'uint8' or 'float32', got {media_dtype!r}")
        self.media_dtype = media_dtype
        self.run_dir, self.predict_split = run_dir, predict_split
        if max_consecutive_bad_samples is not None and max_consecutive_bad_samples < 1:
            raise ValueError(
                f"LVLMDataModule: max_consecutive_bad_samples must be 1 or more, or None: {max_consecutive_bad_samples}"
            )
        self.max_consecutive_bad_samples = max_consecutive_bad_samples
        self._rank, self._world_size = rank, world_size
        self._train_loader: TrainLoader | None = None
        self._pending_state: dict[str, Any] | None = None

    @property
    def rank(self) -> int:
        """Global rank: the explicit value, else the trainer's, else `torch.distributed`'s, else 0."""
        if self._rank is not None:
            return self._rank
        if self.trainer is not None:
            return self.trainer.global_rank
        return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0

    @property
    def world_size(self) -> int:
        """Number of ranks, resolved like `rank`."""
        if self._world_size is not None:
            return self._world_size
        if self.trainer is not None:
            return self.trainer.world_size
        return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1

    @property
    def batches_per_epoch(self) -> int:
        """Training batches per epoch on every rank."""
        if self.sampling == "single_pass" and self.max_tokens_per_batch is not None:
            return micro_batches_per_rank(sum(len(b) for b in self.packed_index()[1]), self.world_size)
        if self.sampling == "single_pass":
            index = self.train_index()
            return batches_per_rank(sum(len(keys) for _, keys in index), self.world_size, self.batch_size)
        if self._batches_per_epoch is not None:
            return self._batches_per_epoch
        return max(1, (self.samples_per_epoch or 0) // (self.batch_size * self.world_size))

    def train_index(self) -> list[ShardKeys]:
        """Every training shard's sample keys (single pass; listed once, from the tar headers)."""
        if self._train_index is None:
            report = BadSampleReport(self.report_dir(), "train", self.rank)
            urls = [url for s in self.train_sources for url in expand_pattern(s["pattern"])]
            self._train_index = [(url, tuple(list_keys(url, report.shard_error))) for url in urls]
            if len({s.get("weight", 1.0) for s in self.train_sources}) > 1:
                log.info("single pass: source weights are ignored (every sample is used once per epoch)")
        return self._train_index

    def packed_index(self) -> tuple[list[ShardLengths], list[list[Bin]]]:
        """Every training sample's token length and the micro-batches they pack into (packed single pass).

        Read once, at start-up (`lvlm.data.length_index`: under `torch.distributed` the ranks share the work, so
        every rank must get here together, as Lightning's `train_dataloader` calls do); samples that fail to
        tokenize are reported once and left out of every epoch.
        """
        if self._packed is None:
            assert self.max_tokens_per_batch is not None
            report = BadSampleReport(self.report_dir(), "train", self.rank)
            processor = self._processor("train", augment=False, keep_meta=False)
            urls = [url for s in self.train_sources for url in expand_pattern(s["pattern"])]
            index = length_index(urls, processor, report, self.rank, self.world_size)
            self._packed = index, index_bins(index, self.max_tokens_per_batch, self.group_by_modality_length)
        return self._packed

    def report_dir(self) -> str:
        """The run directory of the bad-sample report (chosen once)."""
        if self.run_dir is None:
            log_dir = self.trainer.log_dir if self.trainer is not None else None
            # Without a trainer: a fresh temporary path, created only when a bad sample is written to it.
            self.run_dir = log_dir or os.path.join(tempfile.gettempdir(), f"lvlm-data-{uuid.uuid4().hex}")
            log.info("bad-sample reports go to %s", self.run_dir)
        return self.run_dir

    def bad_sample_counts(self, split: str | None = None) -> Counter[str]:
        """Skipped samples by reason so far, over all ranks and workers writing to this run directory."""
        return count_bad_samples(self.report_dir(), split)

    def _processor(self, mode: Literal["train", "prompt"], augment: bool, keep_meta: bool) -> SampleProcessor:
        return SampleProcessor(
            self.tokenizer,
            self.template,
            self.modalities,
            self.num_frames,
            self.max_length,
            mode,
            augment,
            self.seed,
            keep_meta,
            self.video_backend,
            self.media_dtype,
            caption_prompts([*self.train_sources, *self.val_sources, *self.test_sources]),
        )

    def _loader_kwargs(self) -> dict[str, Any]:
        kwargs: dict[str, Any] = {"num_workers": self.num_workers, "pin_memory": self.pin_memory}
        if self.num_workers > 0:
            kwargs["prefetch_factor"] = self.prefetch_factor
            kwargs["multiprocessing_context"] = self.multiprocessing_context
        return kwargs

    def train_dataloader(self) -> TrainLoader:
        """The training loader: exactly `batches_per_epoch` batches per epoch on every rank."""
        if not self.train_sources:
            raise ValueError("LVLMDataModule: no train_sources given")
        sources = [
            (expand_pattern(s["pattern"]), float(s.get("weight", 1.0)), s["pattern"]) for s in self.train_sources
        ]
        stream = TrainStream(
            sources,
            self._processor("train", self.augment, keep_meta=False),
            PackingCollator(self.modalities)
            if self.max_tokens_per_batch
            else Collator(self.tokenizer.pad_token_id, "right", self.modalities),
            self.batch_size,
            self.seed,
            BadSampleReport(self.report_dir(), "train", self.rank, self.max_consecutive_bad_samples),
            self.shuffle_buffer,
            self.group_by_modality_length,
        )
        stream.rank, stream.world_size = self.rank, self.world_size
        if self.sampling == "single_pass" and self.max_tokens_per_batch is not None:
            stream.packed_index, stream.packed_bins = self.packed_index()
        elif self.sampling == "single_pass":
            stream.index = self.train_index()
        stream.max_tokens_per_batch = self.max_tokens_per_batch
        # A rebuilt loader (e.g. `reload_dataloaders_every_n_epochs`) continues the previous one's epoch count.
        previous = self._train_loader.state_dict() if self._train_loader is not None else None
        self._train_loader = TrainLoader(stream, self.batches_per_epoch, self._loader_kwargs())
        self._train_loader.count_trained = self.trainer is not None
        state, self._pending_state = self._pending_state or previous, None
        if state is not None:
            self._train_loader.load_state_dict(state)
        return self._train_loader

    def _eval_loader(
        self, split: str, sources: Sequence[Mapping[str, Any]], prompt: bool
    ) -> torch.utils.data.DataLoader:
        if not sources:
            raise ValueError(f"LVLMDataModule: no {split}_sources given")
        report = BadSampleReport(self.report_dir(), "predict" if prompt else split, self.rank)
        urls = [url for s in sources for url in expand_pattern(s["pattern"])]
        processor = self._processor("prompt" if prompt else "train", augment=False, keep_meta=True)
        collator = Collator(self.tokenizer.pad_token_id, "left" if prompt else "right", self.modalities)
        dataset = EvalStream(
            build_index(urls, report), processor, collator, self.batch_size, self.rank, self.world_size, report
        )
        return torch.utils.data.DataLoader(dataset, batch_size=None, **self._loader_kwargs())

    def val_dataloader(self) -> torch.utils.data.DataLoader:
        """Validation batches (right padding, with labels), each sample once over all ranks."""
        return self._eval_loader("val", self.val_sources, prompt=False)

    def test_dataloader(self) -> torch.utils.data.DataLoader:
        """Test batches, like validation."""
        return self._eval_loader("test", self.test_sources, prompt=False)

    def predict_dataloader(self) -> torch.utils.data.DataLoader:
        """Generation prompts of the `predict_split` set (left padding; `meta[i]["reference"]`)."""
        sources = self.val_sources if self.predict_split == "val" else self.test_sources
        return self._eval_loader(self.predict_split, sources, prompt=True)

    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        """Counts training batches handed to `training_step` (the resume point excludes prefetched batches)."""
        if self.trainer is not None and self.trainer.training and self._train_loader is not None:
            self._train_loader.trained += 1
        return batch

    def state_dict(self) -> dict[str, Any]:
        """The training stream's resume point (see `TrainLoader.state_dict`)."""
        if self._train_loader is None:
            return {} if self._pending_state is None else {"train": dict(self._pending_state)}
        return {"train": self._train_loader.state_dict()}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restores the resume point; applied when the training loader is (re)built."""
        state = state_dict.get("train")
        if state is None:
            return
        if self._train_loader is not None:
            self._train_loader.load_state_dict(state)
        else:
            self._pending_state = state


def _load_tokenizer(tokenizer: str | PreTrainedTokenizerBase) -> PreTrainedTokenizerBase:
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


def _plain_settings(arguments: Mapping[str, Any]) -> dict[str, Any]:
    """The data module's arguments as plain data, what a checkpoint records (it is read with ``weights_only``).

    The linked objects are not settings of the data: the modalities are the model's (recorded with it), a tokenizer
    object is recorded by the path it was read from, and a template by its ``{class_path, init_args}``.
    """
    settings = {k: v for k, v in arguments.items() if k not in {"self", "__class__", "modalities"}}
    tokenizer = settings.get("tokenizer")
    if not isinstance(tokenizer, str):
        settings["tokenizer"] = getattr(tokenizer, "name_or_path", None) or None
    return spec_of(settings)
