"""``LVLMModule``: the one LightningModule behind every recipe (stage 1, stage 2, LoRA, ablations).

Every setting is typed and validated by jsonargparse, in four groups (:mod:`lvlm.training.module_settings`):
``parts`` (the LLM, each modality with its tower, the projector: components named by class path with typed
``init_args``), ``optimisation`` (what learns; the optimizer and LR schedule as callables), ``sharding`` and
``export``. Components are built in
:meth:`LVLMModule.configure_model`, which is idempotent and shards the model under ``ModelParallelStrategy``
(FSDP2). The tokenizer is loaded at construction (it is small) and grown with the placeholder tokens there,
so the data module gets the very same tokenizer object, the chat template and the modalities before any
weight exists (``lvlm.apps.recipe_runner`` links them).

Batch legend: ``b`` samples, ``l`` tokens, ``n`` images or videos, ``t`` frames.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch
from lightning.pytorch.strategies import FSDPStrategy, ModelParallelStrategy
from lightning.pytorch.utilities import rank_zero_info

from lvlm.core.outputs import staged_output
from lvlm.core.specs import spec_of
from lvlm.data.templates import VicunaV1
from lvlm.modalities.media_record import CHECKPOINT_KEY as MEDIA_CHECKPOINT_KEY
from lvlm.modalities.media_record import media_seen, with_seen
from lvlm.models.generation.generate import generate_answers
from lvlm.models.generation.settings import GenerationSettings
from lvlm.models.io.tokenizer import load_tokenizer
from lvlm.models.video_llava import VideoLLaVA
from lvlm.training.export import check_export_paths, export_model
from lvlm.training.lora import add_lora
from lvlm.training.meta_init import load_llm_shards, meta_llm
from lvlm.training.module_settings import Export, ModelParts, Optimisation, Sharding
from lvlm.training.optim import param_groups
from lvlm.training.projector_io import PROJECTOR_FILE, full_state_dict, load_projector, save_projector
from lvlm.training.sharding import apply_activation_checkpointing, shard_model
from lvlm.training.trainability import Trainability, parameter_counts, trainability_table

TEXT_KEYS = ("input_ids", "attention_mask", "labels", "position_ids")  # position_ids: packed batches
DEFAULT_OPTIMISATION, DEFAULT_SHARDING, DEFAULT_EXPORT = Optimisation(), Sharding(), Export()


class LVLMModule(pl.LightningModule):
    """Video-LLaVA training: modalities (each with its tower) + shared projector + LLM, trained as the flags say.

    Args:
        parts: ``model.parts`` (:class:`~lvlm.training.module_settings.ModelParts`): ``llm``, ``modalities``,
            ``projector``, ``tokenizer``, ``chat_template``, ``projector_checkpoint``.
        optimisation: ``model.optimisation`` (:class:`~lvlm.training.module_settings.Optimisation`):
            ``train_projector``, ``train_llm``, ``train_vision``, ``lora``, ``optimizer``, ``lr_scheduler``,
            ``projector_lr``.
        sharding: ``model.sharding`` (:class:`~lvlm.training.module_settings.Sharding`): ``fsdp``,
            ``activation_checkpointing``.
        export: ``model.export`` (:class:`~lvlm.training.module_settings.Export`): ``dir``, ``projector``,
            ``overwrite``.
        max_new_tokens: generation length of ``predict``.
    """

    def __init__(
        self,
        parts: ModelParts,
        optimisation: Optimisation = DEFAULT_OPTIMISATION,
        sharding: Sharding = DEFAULT_SHARDING,
        export: Export = DEFAULT_EXPORT,
        max_new_tokens: int = 128,
    ) -> None:
        super().__init__()
        modalities = {name: modality for name, modality in parts.modalities.items() if modality is not None}
        if not modalities:
            raise ValueError("model.parts.modalities: give at least one modality (e.g. image and video)")
        arguments = {k: v for k, v in locals().items() if k not in {"self", "__class__", "modalities"}}
        self.save_hyperparameters(spec_of(arguments))
        self.parts, self.optimisation, self.sharding, self.exports = parts, optimisation, sharding, export
        self.llm_factory, self.projector_factory = parts.llm, parts.projector
        self.modalities = {name: modality.bind(name) for name, modality in modalities.items()}
        self.chat_template = parts.chat_template or VicunaV1()
        self.lora = optimisation.lora
        flags = (optimisation.train_projector, optimisation.train_llm, optimisation.train_vision)
        self.trainability = Trainability(*flags, lora=self.lora is not None)
        self.tokenizer = self._load_tokenizer(parts.tokenizer)
        self.model: VideoLLaVA | None = None
        self.sharded = False
        self.media_seen: dict[str, dict[str, Any]] | None = None  # set by `record_media`; else from the towers

    # --- construction ------------------------------------------------------------------------------
    def _load_tokenizer(self, path: str | None):
        path = path or getattr(self.llm_factory, "keywords", {}).get("pretrained")
        if path is None:
            raise ValueError("model.parts.tokenizer: the LLM is built from a config, so give the tokenizer's directory")
        tokenizer = load_tokenizer(path)
        # Placeholders are added here, before the model exists, so the data side can tokenize with the
        # final ids; VideoLLaVA.build adds the same tokens again, which keeps their ids.
        tokens = [m.token for m in self.modalities.values()]
        tokenizer.add_special_tokens({"additional_special_tokens": tokens}, replace_extra_special_tokens=False)
        return tokenizer

    def configure_model(self) -> None:
        """Build towers, projector and LLM (once), load the stage-1 projector, add LoRA, set flags, shard."""
        if self.model is not None:
            return
        towers = {name: modality.build_tower() for name, modality in self.modalities.items()}
        # Under FSDP2 the LLM's weights are built on meta and each rank loads only its shard (after sharding).
        sharding = self._trainer is not None and isinstance(self.trainer.strategy, ModelParallelStrategy)
        on_meta = meta_llm(self.llm_factory) if sharding else None
        llm = on_meta[0] if on_meta is not None else self.llm_factory()
        self.model = VideoLLaVA.build(
            llm,
            towers,
            projector=self.projector_factory,
            tokenizer=self.tokenizer,
            modalities=self.modalities,
            chat_template=spec_of(self.chat_template),
            modality_specs=self._modality_specs(),
        )
        if self.parts.projector_checkpoint is not None:
            load_projector(self.model.projector, self.parts.projector_checkpoint)
        if self.lora is not None:
            add_lora(self.model.llm.causal_lm, self.lora)
        self.trainability.apply(self.model)
        if self._trainer is not None and isinstance(self.trainer.strategy, (FSDPStrategy, ModelParallelStrategy)):
            self.model.encode_every_modality = True  # sharded towers: every rank runs the same all-gathers
        rank_zero_info("lvlm trainable parameters:\n" + trainability_table(parameter_counts(self.model)))
        if self.sharding.activation_checkpointing:
            apply_activation_checkpointing(self.model)
        self._shard_if_model_parallel()
        if on_meta is not None:
            load_llm_shards(self.model, on_meta[1])

    def _modality_specs(self) -> dict[str, Any]:
        specs = {name: modality.to_spec() for name, modality in self.modalities.items()}
        return with_seen(specs, self.media_seen or media_seen(self.modalities, None))

    def record_media(self, seen: Mapping[str, Mapping[str, Any]]) -> None:
        """Record how the data side fed each tower (:mod:`lvlm.modalities.media_record`); saved with the model."""
        self.media_seen = {name: dict(record) for name, record in seen.items()}
        if self.model is not None:
            self.model.modality_specs = self._modality_specs()

    def _shard_if_model_parallel(self) -> None:
        if self._trainer is None or not isinstance(self.trainer.strategy, ModelParallelStrategy):
            return
        mesh = self.device_mesh
        if mesh["tensor_parallel"].size() != 1:
            raise ValueError("lvlm shards with FSDP2 only: set trainer.strategy.init_args.tensor_parallel_size: 1")
        shard_model(
            self.model,
            mesh["data_parallel"],
            mixed_precision=self.sharding.fsdp.mixed_precision,
            reshard_after_forward=self.sharding.fsdp.reshard_after_forward,
        )
        self.sharded = True

    def setup(self, stage: str) -> None:
        datamodule = getattr(self.trainer, "datamodule", None)
        if stage == "fit":
            # the frames the data module samples per video are part of the model: inference must sample as many
            media = getattr(datamodule, "media", None)
            self.record_media(media_seen(self.modalities, getattr(media, "num_frames", None)))
            # before any training: an export must not destroy an input, the run or an older export
            check_export_paths(
                self.hparams,
                getattr(datamodule, "hparams", None),
                self.trainer.default_root_dir,
                self.exports.overwrite,
            )

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Run checkpoints carry the media record too, so a conversion of the run keeps it."""
        checkpoint[MEDIA_CHECKPOINT_KEY] = self.media_seen or media_seen(self.modalities, None)

    # --- steps -------------------------------------------------------------------------------------
    def forward(self, batch: Mapping[str, Any]) -> Any:
        """Causal LM output of a batch: ``input_ids [b, l]``, ``images [n, 3, h, w]``, ``videos [n, t, 3, h, w]``.

        With ``labels``, ``.logits`` holds only the positions that predict a supervised token (``loss_only``; one
        row per supervised token when a padded batch runs without its padding, ``drop_padding``).
        """
        inputs = {k: batch[k] for k in TEXT_KEYS if batch.get(k) is not None}
        inputs |= {k: batch[k] for k in self.model.input_names if batch.get(k) is not None}
        # No KV cache in training: a recomputed (activation-checkpointed) layer would append to it twice.
        # The steps read only the loss: the LM head runs only where a token is predicted (loss_only), and the LLM
        # only on real tokens, a padded batch's rows back to back (drop_padding).
        return self.model(**inputs, use_cache=False, loss_only=True, drop_padding=True)

    def training_step(self, batch: Mapping[str, Any], batch_idx: int) -> torch.Tensor:
        loss = self(batch).loss
        if batch.get("filler"):
            # A filler micro-batch (packed single pass, lvlm.data.packed_pass) evens out the ranks' counts: it
            # runs forward and backward like any batch, so every rank joins the same collectives, and trains nothing.
            return loss * 0.0
        self.log("train/loss", loss, prog_bar=True, batch_size=batch["input_ids"].shape[0], sync_dist=False)
        for group in self.optimizers().param_groups:
            self.log(f"train/lr_{group.get('name', 'main')}", group["lr"], batch_size=1)
        return loss

    def validation_step(self, batch: Mapping[str, Any], batch_idx: int) -> torch.Tensor:
        loss = self(batch).loss
        self.log("val/loss", loss, prog_bar=True, batch_size=batch["input_ids"].shape[0], sync_dist=True)
        return loss

    def test_step(self, batch: Mapping[str, Any], batch_idx: int) -> torch.Tensor:
        loss = self(batch).loss
        self.log("test/loss", loss, batch_size=batch["input_ids"].shape[0], sync_dist=True)
        return loss

    def predict_step(self, batch: Mapping[str, Any], batch_idx: int) -> list[dict[str, Any]]:
        """Greedy answers for LEFT-padded prompts (the generation engine, :mod:`lvlm.models.generation`):
        ``[{key, text}]``."""
        media = {k: batch[k] for k in self.model.input_names if batch.get(k) is not None}
        ids = batch["input_ids"]
        mask = batch.get("attention_mask")
        answers = generate_answers(
            self.model, self.tokenizer, ids, torch.ones_like(ids) if mask is None else mask, media,
            GenerationSettings(self.hparams.max_new_tokens), self.model.llm.config.max_position_embeddings,
        )  # fmt: skip
        keys = batch.get("keys") or [None] * len(answers)
        return [{"key": key, "text": answer.text} for key, answer in zip(keys, answers)]

    def on_before_optimizer_step(self, optimizer: torch.optim.Optimizer) -> None:
        # Not Lightning's grad_norm: it logs one entry per parameter and, under FSDP2, only local shards' norms.
        grads = [p.grad for group in optimizer.param_groups for p in group["params"] if p.grad is not None]
        if grads:
            norm = torch.nn.utils.get_total_norm(grads, norm_type=2.0)
            if hasattr(norm, "full_tensor"):  # FSDP2: DTensor gradients give a partial norm
                norm = norm.full_tensor()
            self.log("train/grad_norm", norm, batch_size=1)

    # --- optimizer ---------------------------------------------------------------------------------
    def configure_optimizers(self) -> dict[str, Any]:
        groups = param_groups(self.model, projector_lr=self.optimisation.projector_lr)
        optimizer = self.optimisation.optimizer(groups)
        scheduler_args = {}
        scheduler_factory = self.optimisation.lr_scheduler
        if "total_steps" in _init_parameters(scheduler_factory):
            total = self.trainer.estimated_stepping_batches
            if total == float("inf"):
                raise ValueError(
                    "the LR schedule needs a length: set trainer.max_steps, "
                    "or data.sampling.batches_per_epoch with max_epochs"
                )
            scheduler_args["total_steps"] = int(total)
        scheduler = scheduler_factory(optimizer, **scheduler_args)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    # --- exports -----------------------------------------------------------------------------------
    def on_fit_end(self) -> None:
        if self.trainability.train_projector:
            state = full_state_dict(self.model.projector)
            path = (
                self.exports.projector or Path(self.trainer.log_dir or self.trainer.default_root_dir) / PROJECTOR_FILE
            )
            if self.trainer.is_global_zero:
                with staged_output(path, directory=False) as staged:
                    save_projector(state, staged)
                rank_zero_info(f"lvlm: projector written to {path}")
        if self.exports.dir is not None:
            export_model(
                self.model,
                self.exports.dir,
                self.tokenizer,
                sharded=self.sharded,
                is_rank_zero=self.trainer.is_global_zero,
                lora=self.lora,
            )
            rank_zero_info(f"lvlm: model and tokenizer exported to {self.exports.dir}")
        self.trainer.strategy.barrier("lvlm-export")


def _init_parameters(factory: Callable[..., Any]) -> Mapping[str, inspect.Parameter]:
    """Parameters a factory accepts: a jsonargparse factory is a partial over the class it builds."""
    target = next((a for a in getattr(factory, "args", ()) if isinstance(a, type)), factory)
    try:
        return inspect.signature(target).parameters
    except (TypeError, ValueError):
        return {}
