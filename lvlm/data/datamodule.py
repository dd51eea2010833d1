"""`LVLMDataModule`: WebDataset shards → model-ready batches for training, validation, test and prediction.

Batch format (see `lvlm.data.collate.Collator`): `input_ids`, `attention_mask`, `labels` (not for predict)
`[b, l]`; one stacked tensor per modality with media in the batch, under its input name (`images`
`[n_i, 3, s, s]`, `videos` `[n_v, t, 3, s, s]`, a plugin's `depths`;
uint8 0-255 by default, normalised by the towers; float32 normalised with `media.dtype: float32`); `keys`,
`modalities`, `meta` lists.

- train: resampled, weighted mix of sources, exactly `sampling.batches_per_epoch` batches per rank (`TrainLoader`);
  or (`sampling.mode: single_pass`) every sample once per epoch, the same batch count on every rank. With
  `loader.max_tokens_per_batch`, packed rows (`lvlm.data.packing`: `input_ids`, `position_ids`, `labels` `[1, l]`);
  in the packed single pass a rank may end an epoch with one copy marked `filler: True` (zero loss).
- val / test: a fixed finite set, every sample once over all ranks, same batch count on every rank, right
  padding (validation loss).
- predict: the val (or test) set as generation prompts ending with `"ASSISTANT:"`, left padding,
  `meta[i]["reference"]` holding the expected answer.
The training stream's sampler (:mod:`lvlm.data.samplers`) and batcher (:mod:`lvlm.data.batchers`) are chosen
from the settings (:mod:`lvlm.data.settings`). Bad samples are skipped, counted and written to
`run_dir/bad_samples.*.jsonl` (`bad_sample_counts()`); training stops after `max_consecutive_bad_samples` in a row.
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

from lvlm.data.captions import caption_prompts, check_source_formats
from lvlm.data.collate import Collator
from lvlm.data.eval_stream import EvalStream, build_index
from lvlm.data.length_index import ShardLengths, length_index
from lvlm.data.media import modality_list
from lvlm.data.packed_pass import Bin, index_bins, micro_batches_per_rank
from lvlm.data.packing import PackingCollator
from lvlm.data.report import BadSampleReport, count_bad_samples
from lvlm.data.sample_pipeline import SampleProcessor
from lvlm.data.settings import (
    DataSources,
    LoaderSettings,
    MediaSettings,
    Sampling,
    check_bad_sample_limit,
    check_settings,
    load_data_tokenizer,
    plain_settings,
    training_strategies,
)
from lvlm.data.shard_io import expand_pattern, list_keys
from lvlm.data.single_pass import ShardKeys, batches_per_rank
from lvlm.data.sources import source_dicts
from lvlm.data.templates import ChatTemplate, get_template
from lvlm.data.train_stream import TrainLoader, TrainStream
from lvlm.models.modality import Modality

log = logging.getLogger(__name__)
DEFAULT_SOURCES, DEFAULT_SAMPLING = DataSources(), Sampling()
DEFAULT_MEDIA, DEFAULT_LOADER = MediaSettings(), LoaderSettings()


class LVLMDataModule(pl.LightningDataModule):
    """Streams Video-LLaVA style WebDataset shards.

    Args:
        sources: :class:`~lvlm.data.settings.DataSources`: ``train``, ``val``, ``test``, ``predict_split``.
        sampling: :class:`~lvlm.data.settings.Sampling`: ``mode`` (``resampled``, ``single_pass``),
            ``batches_per_epoch``, ``samples_per_epoch``, ``seed``, ``shuffle_buffer``, ``group_by_modality_length``.
        media: :class:`~lvlm.data.settings.MediaSettings`: ``num_frames``, ``augment``, ``dtype``, ``video_backend``.
        loader: :class:`~lvlm.data.settings.LoaderSettings`: ``batch_size``, ``max_tokens_per_batch``,
            ``num_workers``, ``prefetch_factor``, ``pin_memory``, ``multiprocessing_context``.
        tokenizer: A directory or hub id (never remote code), or a tokenizer object; ``lvlm fit`` links the model's.
        template: Chat template, or a built-in name (``vicuna_v1``, ``llava_v1``, ``plain``); linked likewise.
        modalities: The model's modalities by name (``lvlm fit`` links ``LVLMModule.modalities`` here): their
            placeholders, shard members, decoding, transforms and batching. None: text only.
        max_length: Maximum tokens per sample, visual tokens included.
        run_dir: Where the bad-sample report goes; default the trainer's log dir.
        rank: Global rank; default from the trainer or ``torch.distributed`` (never from the environment).
        world_size: Number of ranks; same default.
        max_consecutive_bad_samples: Stop training with an error naming the bad-sample report after this many bad
            samples in a row on one rank's stream (a worker's), with no usable sample between: shards whose every
            sample is bad would otherwise be read forever. None never stops.
    """

    def __init__(
        self,
        sources: DataSources = DEFAULT_SOURCES,
        sampling: Sampling = DEFAULT_SAMPLING,
        media: MediaSettings = DEFAULT_MEDIA,
        loader: LoaderSettings = DEFAULT_LOADER,
        tokenizer: str | PreTrainedTokenizerBase = "",
        template: str | ChatTemplate = "vicuna_v1",
        modalities: Mapping[str, Modality] | None = None,
        max_length: int = 2048,
        run_dir: str | None = None,
        rank: int | None = None,
        world_size: int | None = None,
        max_consecutive_bad_samples: int | None = 1000,
    ) -> None:
        super().__init__()
        self.save_hyperparameters(plain_settings(locals()))
        self.sources, self.sampling, self.media, self.loader = sources, sampling, media, loader
        self.train_sources, self.val_sources, self.test_sources = (
            source_dicts(sources.train),
            source_dicts(sources.val),
            source_dicts(sources.test),
        )
        check_settings(self.sampling, self.media, self.loader, self.train_sources, max_length)
        check_source_formats([*self.train_sources, *self.val_sources, *self.test_sources])
        check_bad_sample_limit(max_consecutive_bad_samples)
        self._train_index: list[ShardKeys] | None = None
        self._packed: tuple[list[ShardLengths], list[list[Bin]]] | None = None
        self.tokenizer = load_data_tokenizer(tokenizer)
        self.template = get_template(template)
        self.modalities = modality_list(modalities)
        self.max_length, self.run_dir = max_length, run_dir
        self.max_consecutive_bad_samples = max_consecutive_bad_samples
        self._rank, self._world_size = rank, world_size
        self._train_loader: TrainLoader | None = None
        self._pending_state: dict[str, Any] | None = None

    @property
    def rank(self) -> int:
        """Global rank: the explicit value, else the trainer's, else `torch.distributed`'s, else 0."""
        if self._rank is not None or self.trainer is not None:
            return self._rank if self._rank is not None else self.trainer.global_rank
        return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0

    @property
    def world_size(self) -> int:
        """Number of ranks, resolved like `rank`."""
        if self._world_size is not None or self.trainer is not None:
            return self._world_size if self._world_size is not None else self.trainer.world_size
        return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1

    @property
    def batches_per_epoch(self) -> int:
        """Training batches per epoch on every rank."""
        sampling, batch_size = self.sampling, self.loader.batch_size
        if sampling.mode == "single_pass" and self.loader.max_tokens_per_batch is not None:
            return micro_batches_per_rank(sum(len(b) for b in self.packed_index()[1]), self.world_size)
        if sampling.mode == "single_pass":
            index = self.train_index()
            return batches_per_rank(sum(len(keys) for _, keys in index), self.world_size, batch_size)
        if sampling.batches_per_epoch is not None:
            return sampling.batches_per_epoch
        return max(1, (sampling.samples_per_epoch or 0) // (batch_size * self.world_size))

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
            max_tokens = self.loader.max_tokens_per_batch
            assert max_tokens is not None
            report = BadSampleReport(self.report_dir(), "train", self.rank)
            processor = self._processor("train", augment=False, keep_meta=False)
            urls = [url for s in self.train_sources for url in expand_pattern(s["pattern"])]
            index = length_index(urls, processor, report, self.rank, self.world_size)
            self._packed = index, index_bins(index, max_tokens, self.sampling.group_by_modality_length)
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
            self.media.num_frames,
            self.max_length,
            mode,
            augment,
            self.sampling.seed,
            keep_meta,
            self.media.video_backend,
            self.media.dtype,
            caption_prompts([*self.train_sources, *self.val_sources, *self.test_sources]),
        )

    def _loader_kwargs(self) -> dict[str, Any]:
        loader = self.loader
        kwargs: dict[str, Any] = {"num_workers": loader.num_workers, "pin_memory": loader.pin_memory}
        if loader.num_workers > 0:
            kwargs["prefetch_factor"] = loader.prefetch_factor
            kwargs["multiprocessing_context"] = loader.multiprocessing_context
        return kwargs

    def train_dataloader(self) -> TrainLoader:
        """The training loader: exactly `batches_per_epoch` batches per epoch on every rank."""
        if not self.train_sources:
            raise ValueError("LVLMDataModule: no data.sources.train given")
        sampler, batcher = training_strategies(
            self.sampling, self.loader, self.train_sources, self.train_index, self.packed_index
        )
        max_tokens = self.loader.max_tokens_per_batch
        stream = TrainStream(
            sampler,
            batcher,
            self._processor("train", self.media.augment, keep_meta=False),
            PackingCollator(self.modalities)
            if max_tokens
            else Collator(self.tokenizer.pad_token_id, "right", self.modalities),
            BadSampleReport(self.report_dir(), "train", self.rank, self.max_consecutive_bad_samples),
            self.sampling.seed,
            self.rank,
            self.world_size,
        )
        resume_settings = {"seed": self.sampling.seed, "world_size": self.world_size}
        resume_settings |= {"batch_size": self.loader.batch_size, "max_tokens_per_batch": max_tokens}
        # A rebuilt loader (e.g. `reload_dataloaders_every_n_epochs`) continues the previous one's epoch count.
        previous = self._train_loader.state_dict() if self._train_loader is not None else None
        self._train_loader = TrainLoader(
            stream, self.batches_per_epoch, self._loader_kwargs(), resume_settings, self.trainer is not None
        )
        state, self._pending_state = self._pending_state or previous, None
        if state is not None:
            self._train_loader.load_state_dict(state)
        return self._train_loader

    def _eval_loader(
        self, split: str, sources: Sequence[Mapping[str, Any]], prompt: bool
    ) -> torch.utils.data.DataLoader:
        if not sources:
            raise ValueError(f"LVLMDataModule: no data.sources.{split} given")
        report = BadSampleReport(self.report_dir(), "predict" if prompt else split, self.rank)
        urls = [url for s in sources for url in expand_pattern(s["pattern"])]
        processor = self._processor("prompt" if prompt else "train", augment=False, keep_meta=True)
        collator = Collator(self.tokenizer.pad_token_id, "left" if prompt else "right", self.modalities)
        dataset = EvalStream(
            build_index(urls, report), processor, collator, self.loader.batch_size, self.rank, self.world_size, report
        )
        return torch.utils.data.DataLoader(dataset, batch_size=None, **self._loader_kwargs())

    def val_dataloader(self) -> torch.utils.data.DataLoader:
        """Validation batches (right padding, with labels), each sample once over all ranks."""
        return self._eval_loader("val", self.val_sources, prompt=False)

    def test_dataloader(self) -> torch.utils.data.DataLoader:
        """Test batches, like validation."""
        return self._eval_loader("test", self.test_sources, prompt=False)

    def predict_dataloader(self) -> torch.utils.data.DataLoader:
        """Generation prompts of the `sources.predict_split` set (left padding; `meta[i]["reference"]`)."""
        split = self.sources.predict_split
        return self._eval_loader(split, self.val_sources if split == "val" else self.test_sources, prompt=True)

    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        """Counts training batches handed to `training_step` (the resume point excludes prefetched batches)."""
        if self.trainer is not None and self.trainer.training and self._train_loader is not None:
            self._train_loader.mark_trained()
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
