"""``VideoLLaVA``: towers + one shared projector + an LLM, fused by placeholder tokens.

Legend: ``b`` batch, ``l`` sequence length, ``n`` items of a modality, ``t`` frames, ``k`` tokens per
item, ``d`` width, ``v`` vocabulary.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn
from transformers import PreTrainedTokenizerBase

from lvlm.models.checkpoints.load import read_checkpoint
from lvlm.models.checkpoints.lvlm_layout import model_config
from lvlm.models.checkpoints.save import save_model
from lvlm.models.dtype_argument import dtype_argument
from lvlm.models.fusion import mask_visual_labels, merge_visual_embeddings, split_media
from lvlm.models.io.weights import load_strict
from lvlm.models.language_model import LanguageModel
from lvlm.models.modality import Modality
from lvlm.models.packed_attention import without_cache_if_packed
from lvlm.models.padding_free import can_drop_padding, pack_padded_rows
from lvlm.models.projector import MLPGeluProjector, Projector
from lvlm.models.recorded_modality import BuiltTower, TowerModality
from lvlm.models.supervised_loss import run_language_model
from lvlm.models.tower_widths import shared_width
from lvlm.models.transformers_generate import transformers_generate
from lvlm.models.vision.base import VisionTower

JSON = Any  # plain JSON data (str, numbers, lists, dicts)


class VideoLLaVA(nn.Module):
    """One LLM that understands images and videos (Video-LLaVA, arXiv 2311.10122).

    Args:
        towers: one tower per modality name (``{"image": ..., "video": ...}``).
        projector: the projector shared by all towers (their widths must agree).
        llm: the language model.
        modalities: one :class:`~lvlm.models.modality.Modality` per tower, in the same order as ``towers``, each
            bound to its tower's name and holding its placeholder's ``token_id``.
        chat_template: the chat template the model was trained with, recorded in checkpoints as given: a
            built-in name (``vicuna_v1``) or ``{class_path, init_args}``; None when unknown, so that nothing falls
            back silently to a wrong one. The model never interprets it (templates live in ``lvlm.data``).
        modality_specs: per modality, the ``{class_path, init_args}`` of the data-side modality component
            (decoding, transform, batching) it was trained with, recorded for inference; never interpreted here.

    Build a new model with :meth:`build` (it adds the placeholder tokens); load one with
    :meth:`from_pretrained`.
    """

    def __init__(
        self,
        towers: Mapping[str, VisionTower],
        projector: Projector,
        llm: LanguageModel,
        modalities: Sequence[Modality],
        chat_template: JSON = "vicuna_v1",
        modality_specs: dict[str, JSON] | None = None,
    ) -> None:
        super().__init__()
        self.towers = nn.ModuleDict(dict(towers))
        self.projector = projector
        self.llm = llm
        self.modalities: dict[str, Modality] = {}
        # Set by LVLMModule under FSDP (1 or 2): a batch without some modality still runs that tower and the
        # projector on one idle item (times 0), so every rank runs the same all-gathers whatever media it holds.
        self.encode_every_modality = False
        self.chat_template = chat_template
        self.modality_specs = dict(modality_specs or {})
        for modality in modalities:
            self._register(modality)

    # --- construction ------------------------------------------------------------------------------
    @classmethod
    def build(
        cls,
        llm: LanguageModel,
        towers: Mapping[str, VisionTower],
        projector: Callable[[int, int], Projector] | Projector = MLPGeluProjector,
        tokenizer: PreTrainedTokenizerBase | None = None,
        modalities: Mapping[str, Modality] | None = None,
        chat_template: JSON = "vicuna_v1",
        modality_specs: dict[str, JSON] | None = None,
    ) -> VideoLLaVA:
        """A new model: adds one placeholder token per tower (to ``tokenizer`` too, if given).

        Args:
            llm: the language model.
            towers: towers by modality name.
            projector: a projector, or a factory ``(d_vision, d_llm) -> Projector`` (a projector class).
            tokenizer: grown in place with the placeholder tokens.
            modalities: the modality of each tower by name (its placeholder); a tower without one gets a
                :class:`~lvlm.models.recorded_modality.TowerModality` with the placeholder ``<name>``.
            chat_template, modality_specs: recorded with the model.
        """
        width = shared_width(towers, projector.in_features if isinstance(projector, Projector) else None)
        if not isinstance(projector, nn.Module):
            projector = projector(width, llm.hidden_size)
        given = dict(modalities or {})
        bound = [given.get(name) or TowerModality(BuiltTower(tower)) for name, tower in towers.items()]
        bound = [modality.bind(name) for name, modality in zip(towers, bound)]
        for modality, token_id in zip(bound, llm.add_tokens([m.token for m in bound], tokenizer)):
            modality.token_id = token_id
        return cls(towers, projector, llm, bound, chat_template, modality_specs)

    def add_modality(
        self,
        name: str,
        tower: VisionTower,
        token: str | None = None,
        tokenizer: PreTrainedTokenizerBase | None = None,
        modality: Modality | None = None,
    ) -> Modality:
        """Add a new modality (depth, thermal, ...): its tower and its placeholder token (``<name>`` by default).

        The tower's width must match the shared projector's input. Returns the new modality: ``modality`` (a
        plugin's, which brings its own token) bound to ``name``, else a
        :class:`~lvlm.models.recorded_modality.TowerModality`.
        """
        if name in self.towers:
            raise ValueError(f"modality {name!r} exists already")
        shared_width({**self.towers, name: tower}, self.projector.in_features)
        modality = (modality or TowerModality(BuiltTower(tower), token)).bind(name)
        (modality.token_id,) = self.llm.add_tokens([modality.token], tokenizer)
        self.towers[name] = tower
        self._register(modality)
        return modality

    def _register(self, modality: Modality) -> None:
        if modality.name not in self.towers:
            raise ValueError(f"modality {modality.name!r} has no tower; towers: {sorted(self.towers)}")
        if modality.token_id is None:
            raise ValueError(f"modality {modality.name!r} has no token_id: its placeholder is not in the vocabulary")
        clash = [m.name for m in self.modalities.values() if m.input_name == modality.input_name]
        if clash or modality.input_name in {"input_ids", "attention_mask", "labels"}:
            raise ValueError(f"input name {modality.input_name!r} of {modality.name!r} is taken")
        self.modalities[modality.name] = modality

    # --- computation -------------------------------------------------------------------------------
    @property
    def placeholder_ids(self) -> list[int]:
        return [m.token_id for m in self.modalities.values()]

    def encode(self, name: str, pixels: torch.Tensor) -> torch.Tensor:
        """Tower then projector: ``[n, c, h, w]`` or ``[n, t, c, h, w]`` → ``[n, k, d_llm]``."""
        features = self.towers[name](pixels)
        # The projector gets [(n k), d]: a linear layer's 2-D output is a new tensor, a 3-D one a view of it, and
        # FSDP2 warns that an in-place op on a view a sharded unit returns would skip its backward all-gather.
        projected = self.projector(features.flatten(0, 1).to(self._projector_dtype()))
        return projected.unflatten(0, features.shape[:2])

    def embed_inputs(self, input_ids: torch.Tensor, media: Mapping[str, torch.Tensor | None]) -> torch.Tensor:
        """``[b, l]`` ids + pixels by input name → ``[b, l, d]`` embeddings with visual features fused in."""
        embeds = self.llm.embed_tokens(input_ids)
        encoded_any = False
        for modality in self.modalities.values():
            pixels = media.get(modality.input_name)
            if pixels is None or pixels.shape[0] == 0:
                if self.encode_every_modality:  # the same collectives on every rank of a sharded run
                    idle = self.encode(modality.name, self.towers[modality.name].idle_pixels(embeds.device))
                    embeds = embeds + 0.0 * idle.sum().to(embeds.dtype)
                    encoded_any = True
                continue
            features = self.encode(modality.name, pixels.to(embeds.device))
            embeds = merge_visual_embeddings(embeds, input_ids, features, modality.token_id, modality.name)
            encoded_any = True
        unknown = set(media) - {m.input_name for m in self.modalities.values()}
        if unknown:
            raise TypeError(f"no modality takes {sorted(unknown)}; this model takes {self.input_names}")
        if not encoded_any and self.training and any(p.requires_grad for p in self.projector.parameters()):
            # Keep a trainable projector in the graph for text-only batches so data-parallel gradient
            # reductions see every parameter (the original spliced a zero-length feature slice).
            probe = torch.zeros(1, self.projector.in_features, device=embeds.device, dtype=self._projector_dtype())
            embeds = embeds + 0.0 * self.projector(probe).sum().to(embeds.dtype)
        return embeds

    @property
    def input_names(self) -> list[str]:
        return [m.input_name for m in self.modalities.values()]

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        images: torch.Tensor | None = None,
        videos: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        loss_only: bool = False,
        full_vocabulary_loss: bool = False,
        drop_padding: bool = False,
        **kwargs: Any,
    ) -> Any:
        """Logits (and loss when ``labels`` are given).

        The loss is taken over the vocabulary without the placeholder rows (they are never targets, and the
        original model had none): on an original-layout checkpoint it equals the original's loss. The logits
        are returned whole, placeholder columns included, as transformers' VideoLlava returns them.

        Args:
            input_ids: ``[b, l]`` with one placeholder id per visual token (transformers' VideoLlava layout).
            attention_mask: ``[b, l]``, 1 for real tokens.
            images: ``[n_i, 3, h, w]``, in the order their placeholders appear (batch, then position).
            videos: ``[n_v, t, 3, h, w]``, likewise.
            labels: ``[b, l]`` targets; visual positions are set to -100 here.
            loss_only: with ``labels``, run the LM head only at positions that predict a target in some row
                (:mod:`lvlm.models.supervised_loss`): the same loss, and ``.logits`` ``[b, n, v]`` at those
                positions only. For training, where only the loss is read; most positions are visual tokens.
            full_vocabulary_loss: take the loss over every vocabulary row, placeholders included, as
                transformers' VideoLlava does (for comparisons with it).
            drop_padding: with ``labels`` and ``loss_only``, run the LLM on the real tokens only, the rows back to
                back in one packed row (:mod:`lvlm.models.padding_free`), when the batch is right-padded and the
                LLM's attention runs per sample (the default ``lvlm_packed_sdpa``, flash-attention): the same loss,
                and ``.logits`` ``[1, n, v]``, one row per supervised token in batch order. Otherwise no effect.
            **kwargs: tensors of added modalities by input name (``depths=...``); the rest goes to the LLM
                (``use_cache``, ``cache``, ``position_ids``, ``logits_to_keep``).

        Packed layout (``lvlm.data.packing``, :mod:`lvlm.models.packed_attention`): ``b = 1``, samples back to
        back, ``position_ids [1, l]`` restarting at 0 at every sample, ``attention_mask=None``; attention and loss
        stay within each sample. A packed batch never builds a KV cache (``use_cache`` is set to False; asking for
        one raises ValueError): transformers ignores the restarts when there is one.

        Returns:
            The causal LM output: ``.logits`` ``[b, l, v]``, ``.loss`` (shifted cross-entropy) or None.
        """
        media = split_media(self.input_names, images, videos, kwargs)
        kwargs = without_cache_if_packed(attention_mask, kwargs)
        embeds = self.embed_inputs(input_ids, media)
        if labels is not None:
            labels = mask_visual_labels(labels, input_ids, self.placeholder_ids)
        excluded = () if full_vocabulary_loss else self.placeholder_ids
        if drop_padding and loss_only and labels is not None:
            implementation = self.llm.config._attn_implementation
            if can_drop_padding(attention_mask, labels, kwargs, implementation):
                embeds, labels, position_ids = pack_padded_rows(embeds, attention_mask, labels)
                attention_mask, kwargs = None, kwargs | {"position_ids": position_ids, "use_cache": False}
        return run_language_model(
            self.llm, embeds, attention_mask, labels, excluded, loss_only, full_vocabulary_loss, **kwargs
        )

    @torch.no_grad()
    def generate(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        images: torch.Tensor | None = None,
        videos: torch.Tensor | None = None,
        **kwargs: Any,
    ) -> torch.Tensor:
        """New tokens ``[b, new]`` after each LEFT-padded prompt, by transformers' ``generate``: the model's
        Hugging Face-style API and the reference lvlm's own engine (:mod:`lvlm.models.generation`) is tested
        against. Arguments as :func:`lvlm.models.transformers_generate.transformers_generate`."""
        return transformers_generate(
            self, input_ids, attention_mask, split_media(self.input_names, images, videos, kwargs), **kwargs
        )

    def _projector_dtype(self) -> torch.dtype:
        param = next(self.projector.parameters(), None)
        return param.dtype if param is not None else self.llm.causal_lm.dtype

    # --- checkpoints -------------------------------------------------------------------------------
    @classmethod
    def from_pretrained(
        cls,
        path_or_hub_id: str | Path,
        dtype: str | torch.dtype | None = None,
        *,
        torch_dtype: str | torch.dtype | None = None,
        **kwargs: Any,
    ) -> VideoLLaVA:
        """Load any supported layout, detected from the files (see :mod:`lvlm.models.checkpoints`).

        ``dtype`` casts the loaded model (``"bfloat16"`` or a ``torch.dtype``), as in transformers 5;
        ``torch_dtype`` is its deprecated name (a ``FutureWarning``, once). An lvlm directory's components are
        resolved by class path, only to component classes of lvlm or of a registered plugin
        (:mod:`lvlm.core.registry`); other keyword arguments are those of
        :func:`lvlm.models.checkpoints.load.read_checkpoint`.
        """
        dtype = dtype_argument(dtype, torch_dtype, "VideoLLaVA.from_pretrained")
        parts = read_checkpoint(path_or_hub_id, torch_dtype=dtype, **kwargs)
        model = cls(parts.towers, parts.projector, parts.llm, parts.modalities, parts.chat_template, parts.specs)
        if parts.state is not None:
            load_strict(model, parts.state, parts.source, dtype=parts.dtype)
        return model if parts.dtype is None else model.to(parts.dtype)

    def save_pretrained(
        self, directory: str | Path, layout: str = "lvlm", tokenizer: PreTrainedTokenizerBase | None = None
    ) -> Path:
        """Write the model (safetensors) in lvlm's layout, or ``layout="hf"`` for transformers' VideoLlava."""
        return save_model(self, directory, layout=layout, tokenizer=tokenizer)

    def to_config(self) -> dict[str, Any]:
        """Everything but the weights, as plain JSON (the lvlm layout's ``lvlm_config.json``)."""
        return model_config(
            self.towers, self.projector, self.llm, self.modalities.values(), self.chat_template, self.modality_specs
        )
