"""``LVLMModule``: the one LightningModule behind every recipe (stage 1, stage 2, LoRA, ablations).

Towers and LLM are factories (``{class_path, init_args}`` in YAML) built in :meth:`LVLMModule.configure_model`,
which is idempotent and shards the model when the strategy is ``ModelParallelStrategy`` (FSDP2). The
tokenizer is loaded at construction (it is small) and grown with the placeholder tokens there, so the
data module can be given the very same tokenizer object and the towers' token counts and preprocessing
(:meth:`LVLMModule.media_slots`) before any weight exists; ``lvlm.apps.fit`` links them.

Batch legend: ``b`` samples, ``l`` tokens, ``n`` images or videos, ``t`` frames.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import lightning.pytorch as pl
import torch
from lightning.pytorch.strategies import ModelParallelStrategy
from lightning.pytorch.utilities import rank_zero_info

from lvlm.training.components import Towers, build, check_factory, plain, tower_factories
from lvlm.training.lora import LoRASettings, add_lora
from lvlm.training.media_probe import media_slots, placeholder_tokens
from lvlm.training.meta_init import load_llm_shards, meta_llm
from lvlm.training.optim import param_groups, warmup_cosine
from lvlm.training.trainability import Trainability, parameter_counts, trainability_table

TEXT_KEYS = ("input_ids", "attention_mask", "labels", "position_ids")  # position_ids: packed batches


class LVLMModule(pl.LightningModule):
    """Video-LLaVA training: towers + shared projector + LLM, trained as the flags say.

    Args:
        llm: factory of the :class:`~lvlm.models.language_model.LanguageModel`.
        towers: tower factories by modality (:class:`Towers`; a ``{name: factory}`` dict also works).
        projector: projector kind shared by all towers (``mlp2x_gelu``).
        tokenizer: tokenizer directory or hub id; defaults to the LLM's ``pretrained``.
        tokens: placeholder token per modality when not ``<name>``.
        chat_template: the template the data uses, recorded in exported checkpoints.
        image_mode: how images meet the tower's square input: ``crop`` (stage 1) or ``pad`` (stage 2).
        train_projector, train_llm, train_vision: what learns (see :class:`~lvlm.training.trainability.Trainability`).
        lora: ``{r, alpha, dropout, target_modules}`` to train LoRA adapters on the LLM only.
        projector_checkpoint: stage-1 ``projector.safetensors`` (or the original ``mm_projector.bin``) to start from.
        lr, projector_lr, weight_decay, betas, eps: AdamW; ``projector_lr`` puts the projector in its own group.
        warmup_ratio, min_lr_ratio: linear warmup then cosine, per optimizer step.
        activation_checkpointing: recompute LLM decoder layers in backward.
        fsdp: FSDP2 options used under ``ModelParallelStrategy``: ``mixed_precision`` (``{param_dtype, reduce_dtype}``)
            and ``reshard_after_forward``.
        export_projector: where to write the projector at the end of fit (default: ``<run dir>/projector.safetensors``
            whenever the projector trained).
        export_dir: write the final model + tokenizer there as an lvlm checkpoint at the end of fit.
        max_new_tokens: generation length of ``predict``.
    """

    def __init__(
        self,
        llm: dict[str, Any],
        towers: Towers,
        projector: str = "mlp2x_gelu",
        tokenizer: str | None = None,
        tokens: dict[str, str] | None = None,
        chat_template: str = "vicuna_v1",
        image_mode: Literal["crop", "pad"] = "crop",
        train_projector: bool = True,
        train_llm: bool = False,
        train_vision: bool = False,
        lora: dict[str, Any] | None = None,
        projector_checkpoint: str | None = None,
        lr: float = 1e-3,
        projector_lr: float | None = None,
        weight_decay: float = 0.0,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        warmup_ratio: float = 0.03,
        min_lr_ratio: float = 0.0,
        activation_checkpointing: bool = False,
        fsdp: dict[str, Any] | None = None,
        export_projector: str | None = None,
        export_dir: str | None = None,
        max_new_tokens: int = 128,
    ) -> None:
        super().__init__()
        towers = tower_factories(towers)
        llm, lora, fsdp = plain(llm), plain(lora), plain(fsdp)
        self.save_hyperparameters(
            {"llm": llm, "towers": towers, "lora": lora, "fsdp": fsdp}
            | {k: v for k, v in locals().items() if k not in {"self", "__class__", "llm", "towers", "lora", "fsdp"}}
        )
        check_factory(llm, "model.llm")
        if not towers:
            raise ValueError("model.towers: give at least one tower (e.g. image and video)")
        for name, spec in towers.items():
            check_factory(spec, f"model.towers.{name}")
        self.lora = LoRASettings.from_dict(lora) if lora is not None else None
        self.trainability = Trainability(train_projector, train_llm, train_vision, lora=self.lora is not None)
        self.placeholder_tokens = placeholder_tokens(towers, tokens)
        self.tokenizer = self._load_tokenizer(tokenizer, llm)
        self.model: torch.nn.Module | None = None
        self.sharded = False
        self._media_slots: list[dict[str, Any]] | None = None

    # --- construction ------------------------------------------------------------------------------
    def _load_tokenizer(self, path: str | None, llm: Mapping[str, Any]):
        from transformers import AutoTokenizer

        from lvlm.models.checkpoints.hub import resolve_checkpoint_dir

        path = path or (llm.get("init_args") or {}).get("pretrained")
        if path is None:
            raise ValueError("model.tokenizer: the LLM is built from a config, so give the tokenizer's directory")
        tokenizer = AutoTokenizer.from_pretrained(str(resolve_checkpoint_dir(path)))
        if tokenizer.pad_token is None:  # Vicuna has none; the original pads with unk (template v1)
            tokenizer.pad_token = tokenizer.unk_token
        # Placeholders are added here, before the model exists, so the data side can tokenize with the
        # final ids; VideoLLaVA.build adds the same tokens again, which keeps their ids.
        tokenizer.add_special_tokens(
            {"additional_special_tokens": list(self.placeholder_tokens.values())}, replace_extra_special_tokens=False
        )
        return tokenizer

    def media_slots(self) -> list[dict[str, Any]]:
        """The data side's ``slots``: marker, token, batch key, kind, tokens per item, size, mean, std, image mode."""
        if self._media_slots is None:
            self._media_slots = media_slots(self.hparams.towers, self.placeholder_tokens, self.hparams.image_mode)
        return self._media_slots

    def configure_model(self) -> None:
        """Build towers, projector and LLM (once), load the stage-1 projector, add LoRA, set flags, shard."""
        if self.model is not None:
            return
        from lvlm.models.video_llava import VideoLLaVA

        towers = {name: build(spec, f"model.towers.{name}") for name, spec in self.hparams.towers.items()}
        # Under FSDP2 the LLM's weights are built on meta and each rank loads only its shard (after sharding).
        sharding = self._trainer is not None and isinstance(self.trainer.strategy, ModelParallelStrategy)
        on_meta = meta_llm(self.hparams.llm) if sharding else None
        llm = on_meta[0] if on_meta is not None else build(self.hparams.llm, "model.llm")
        self.model = VideoLLaVA.build(
            llm,
            towers,
            projector=self.hparams.projector,
            tokenizer=self.tokenizer,
            tokens=self.placeholder_tokens,
            chat_template=self.hparams.chat_template,
        )
        if self.hparams.projector_checkpoint is not None:
            from lvlm.training.projector_io import load_projector

            load_projector(self.model.projector, self.hparams.projector_checkpoint)
        if self.lora is not None:
            add_lora(self.model.llm.causal_lm, self.lora)
        self.trainability.apply(self.model)
        rank_zero_info("lvlm trainable parameters:\n" + trainability_table(parameter_counts(self.model)))
        if self.hparams.activation_checkpointing:
            from lvlm.training.sharding import apply_activation_checkpointing

            apply_activation_checkpointing(self.model)
        self._shard_if_model_parallel()
        if on_meta is not None:
            load_llm_shards(self.model, on_meta[1])

    def _shard_if_model_parallel(self) -> None:
        from lightning.pytorch.strategies import ModelParallelStrategy

        if self._trainer is None or not isinstance(self.trainer.strategy, ModelParallelStrategy):
            return
        from lvlm.training.sharding import shard_model

        mesh = self.device_mesh
        if mesh["tensor_parallel"].size() != 1:
            raise ValueError("lvlm shards with FSDP2 only: set trainer.strategy.init_args.tensor_parallel_size: 1")
        fsdp = self.hparams.fsdp or {}
        shard_model(
            self.model,
            mesh["data_parallel"],
            mixed_precision=fsdp.get("mixed_precision"),
            reshard_after_forward=fsdp.get("reshard_after_forward", True),
        )
        self.sharded = True

    # --- steps -------------------------------------------------------------------------------------
    def forward(self, batch: Mapping[str, Any]) -> Any:
        """Causal LM output of a batch: ``input_ids [b, l]``, ``images [n, 3, h, w]``, ``videos [n, t, 3, h, w]``.

        With ``labels``, ``.logits`` holds only the positions that predict a supervised token (``loss_only``).
        """
        inputs = {k: batch[k] for k in TEXT_KEYS if batch.get(k) is not None}
        inputs |= {k: batch[k] for k in self.model.input_names if batch.get(k) is not None}
        # No KV cache in training: a recomputed (activation-checkpointed) layer would append to it twice.
        # The steps read only the loss: the LM head runs only where a token is predicted (loss_only).
        return self.model(**inputs, use_cache=False, loss_only=True)

    def training_step(self, batch: Mapping[str, Any], batch_idx: int) -> torch.Tensor:
        loss = self(batch).loss
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
        """Greedy answers for LEFT-padded prompts: ``[{key, text}]``."""
        media = {k: batch[k] for k in self.model.input_names if batch.get(k) is not None}
        new = self.model.generate(
            batch["input_ids"],
            attention_mask=batch.get("attention_mask"),
            max_new_tokens=self.hparams.max_new_tokens,
            eos_token_id=self.tokenizer.eos_token_id,
            pad_token_id=self.tokenizer.pad_token_id,
            **media,
        )
        texts = self.tokenizer.batch_decode(new, skip_special_tokens=True)
        keys = batch.get("keys") or [None] * len(texts)
        return [{"key": key, "text": text.strip()} for key, text in zip(keys, texts)]

    def on_before_optimizer_step(self, optimizer: torch.optim.Optimizer) -> None:
        grads = [p.grad for group in optimizer.param_groups for p in group["params"] if p.grad is not None]
        if grads:
            norm = torch.nn.utils.get_total_norm(grads, norm_type=2.0)
            if hasattr(norm, "full_tensor"):  # FSDP2: DTensor gradients give a partial norm
                norm = norm.full_tensor()
            self.log("train/grad_norm", norm, batch_size=1)

    # --- optimizer ---------------------------------------------------------------------------------
    def configure_optimizers(self) -> dict[str, Any]:
        hp = self.hparams
        groups = param_groups(self.model, hp.lr, hp.weight_decay, hp.projector_lr)
        optimizer = torch.optim.AdamW(groups, lr=hp.lr, betas=tuple(hp.betas), eps=hp.eps, weight_decay=hp.weight_decay)
        total = self.trainer.estimated_stepping_batches
        if total == float("inf"):
            raise ValueError(
                "the cosine schedule needs a length: set trainer.max_steps, or data.batches_per_epoch with max_epochs"
            )
        schedule = torch.optim.lr_scheduler.LambdaLR(
            optimizer, warmup_cosine(int(total), hp.warmup_ratio, hp.min_lr_ratio)
        )
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}

    # --- exports -----------------------------------------------------------------------------------
    def on_fit_end(self) -> None:
        from lvlm.training.export import export_model
        from lvlm.training.projector_io import PROJECTOR_FILE, full_state_dict, save_projector

        if self.trainability.train_projector:
            state = full_state_dict(self.model.projector)
            path = (
                self.hparams.export_projector
                or Path(self.trainer.log_dir or self.trainer.default_root_dir) / PROJECTOR_FILE
            )
            if self.trainer.is_global_zero:
                rank_zero_info(f"lvlm: projector written to {save_projector(state, path)}")
        if self.hparams.export_dir is not None:
            export_model(
                self.model,
                self.hparams.export_dir,
                self.tokenizer,
                sharded=self.sharded,
                is_rank_zero=self.trainer.is_global_zero,
                lora=self.lora,
            )
            rank_zero_info(f"lvlm: model and tokenizer exported to {self.hparams.export_dir}")
        self.trainer.strategy.barrier("lvlm-export")
