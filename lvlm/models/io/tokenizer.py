"""The one way lvlm loads a tokenizer: from a directory or hub id, never running code from it."""

from __future__ import annotations

from pathlib import Path

from transformers import AutoTokenizer, PreTrainedTokenizerBase

from lvlm.models.io.hub import resolve_checkpoint_dir


def load_tokenizer(path_or_hub_id: str | Path) -> PreTrainedTokenizerBase:
    """The tokenizer of a directory (or cached hub id); its pad token is its unk token when it has none
    (Vicuna has none; the original pads with unk, template v1).

    Raises:
        FileNotFoundError: no tokenizer there.
    """
    directory = resolve_checkpoint_dir(path_or_hub_id)
    try:
        # trust_remote_code=False: a tokenizer directory never runs code, and transformers never asks on stdin.
        tokenizer = AutoTokenizer.from_pretrained(str(directory), trust_remote_code=False)
    except (OSError, ValueError) as error:
        raise FileNotFoundError(f"{directory}: no tokenizer ({error})") from error
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.unk_token
    return tokenizer
