"""The LLM, held by composition over ``AutoModelForCausalLM`` (never subclassed).

Legend: ``b`` batch, ``l`` sequence length, ``d`` width, ``v`` vocabulary.
"""

from __future__ import annotations

import inspect
from typing import Any

import torch
from torch import nn
from transformers import AutoConfig, AutoModelForCausalLM, PretrainedConfig, PreTrainedTokenizerBase

from lvlm.models.io.hub import resolve_checkpoint_dir
from lvlm.models.packed_attention import PACKED_SDPA


def _dtype(value: str | torch.dtype | None) -> torch.dtype | None:
    if value is None or isinstance(value, torch.dtype):
        return value
    return getattr(torch, value.removeprefix("torch."))


def text_config_from(config: PretrainedConfig | dict[str, Any]) -> PretrainedConfig:
    """A transformers config from a config object or a dict carrying ``model_type`` (e.g. ``llama``)."""
    if isinstance(config, PretrainedConfig):
        return config
    config = dict(config)
    model_type = config.pop("model_type", None)
    if model_type is None:
        raise ValueError("an LLM config dict needs 'model_type' (e.g. 'llama')")
    # auto_map would name code to import from a folder: lvlm never runs it (built-in model types only).
    for key in ("architectures", "transformers_version", "_name_or_path", "dtype", "torch_dtype", "auto_map"):
        config.pop(key, None)
    return AutoConfig.for_model(model_type, **config)


class LanguageModel(nn.Module):
    """A Hugging Face causal LM (Vicuna/Llama or any ``AutoModelForCausalLM``).

    Args:
        pretrained: a local directory or hub id to load weights from (no code from it ever runs).
        config: a config dict with ``model_type`` (or a ``PretrainedConfig``) to build randomly initialised weights.
        torch_dtype: dtype to load or build in (``"bfloat16"``, ``torch.float32``, ...).
        attn_implementation: ``lvlm_packed_sdpa`` (default: transformers' ``sdpa``, except that a packed row
            attends per sample without a dense mask, :mod:`lvlm.models.packed_attention`), ``sdpa``, ``eager``
            or ``flash_attention_2``.
    """

    def __init__(
        self,
        pretrained: str | None = None,
        config: dict[str, Any] | None = None,
        torch_dtype: str | torch.dtype | None = None,
        attn_implementation: str = PACKED_SDPA,
    ) -> None:
        super().__init__()
        if (pretrained is None) == (config is None):
            raise ValueError("LanguageModel needs exactly one of `pretrained` (a directory or hub id) or `config`")
        self.pretrained = pretrained
        dtype = _dtype(torch_dtype)
        if pretrained is not None:
            path = resolve_checkpoint_dir(pretrained)
            self.causal_lm = AutoModelForCausalLM.from_pretrained(
                path, dtype=dtype, attn_implementation=attn_implementation, trust_remote_code=False
            )
        else:
            self.causal_lm = AutoModelForCausalLM.from_config(
                text_config_from(config), dtype=dtype, attn_implementation=attn_implementation, trust_remote_code=False
            )
            # transformers ties input and output embeddings in `init_weights`, which `no_init_weights` (used to
            # build a model before loading its weights) skips: tie here, as the config says.
            self.causal_lm.tie_weights()

    @property
    def config(self) -> PretrainedConfig:
        return self.causal_lm.config

    @property
    def hidden_size(self) -> int:
        return self.config.hidden_size

    @property
    def vocab_size(self) -> int:
        return self.causal_lm.get_input_embeddings().num_embeddings

    @property
    def decoder_layers(self) -> nn.ModuleList:
        """The transformer blocks (for sharding and activation checkpointing)."""
        return self.causal_lm.get_decoder().layers

    @property
    def block_classes(self) -> tuple[type[nn.Module], ...]:
        return (type(self.decoder_layers[0]),)

    def to_config(self) -> dict[str, Any]:
        return {"config": self.config.to_dict()}

    @property
    def keeps_logits_by_index(self) -> bool:
        """Whether the causal LM takes ``logits_to_keep`` (transformers' models since 4.50 do; it also takes a
        tensor of positions)."""
        return "logits_to_keep" in inspect.signature(self.causal_lm.forward).parameters

    def embed_tokens(self, input_ids: torch.Tensor) -> torch.Tensor:
        """``[b, l]`` ids → ``[b, l, d]`` embeddings."""
        return self.causal_lm.get_input_embeddings()(input_ids)

    def forward(self, inputs_embeds: torch.Tensor, **kwargs: Any) -> Any:
        """Run the causal LM on ``[b, l, d]`` embeddings; returns its output (``.logits`` ``[b, l, v]``, ``.loss``)."""
        return self.causal_lm(inputs_embeds=inputs_embeds, **kwargs)

    def add_tokens(self, tokens: list[str], tokenizer: PreTrainedTokenizerBase | None = None) -> list[int]:
        """Add special tokens (to ``tokenizer`` if given) and grow the embeddings; returns their ids.

        New input and output rows are the mean of the existing rows (deterministic): placeholder rows are
        overwritten by visual features anyway, and a mean output row is never preferred by greedy decoding.
        """
        if tokenizer is not None:
            tokenizer.add_special_tokens({"additional_special_tokens": tokens}, replace_extra_special_tokens=False)
            ids = tokenizer.convert_tokens_to_ids(tokens)
            new_size = max(len(tokenizer), self.vocab_size)
        else:
            ids = list(range(self.vocab_size, self.vocab_size + len(tokens)))
            new_size = self.vocab_size + len(tokens)
        old_size = self.vocab_size
        if new_size > old_size:
            self.causal_lm.resize_token_embeddings(new_size, mean_resizing=False)
            self._fill_new_rows(old_size)
        return list(ids)

    @torch.no_grad()
    def _fill_new_rows(self, old_size: int) -> None:
        for embedding in (self.causal_lm.get_input_embeddings(), self.causal_lm.get_output_embeddings()):
            if embedding is not None and embedding.weight.shape[0] > old_size:
                embedding.weight[old_size:] = embedding.weight[:old_size].mean(0, keepdim=True)
