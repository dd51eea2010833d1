"""Tokenizers loaded with no code from their folder: remote code disabled, never a question asked on stdin.

transformers asks on stdin whether to run a folder's code when ``trust_remote_code`` is left unset (``lvlm chat``
would answer that prompt from the user's own input); here it is always ``False`` and a folder that needs its
own code is refused with :class:`~lvlm.core.errors.UnsafeInputError` naming the folder.
"""

from __future__ import annotations

import os

from transformers import AutoTokenizer, PreTrainedTokenizerBase

from lvlm.core.errors import UnsafeInputError


def load_tokenizer(path: str | os.PathLike[str]) -> PreTrainedTokenizerBase:
    """``AutoTokenizer.from_pretrained(path, trust_remote_code=False)``; a folder needing its code is refused."""
    try:
        return AutoTokenizer.from_pretrained(os.fspath(path), trust_remote_code=False)
    except ValueError as err:
        if "custom code" in str(err) or "trust_remote_code" in str(err):
            raise UnsafeInputError(
                f"{path}: this tokenizer needs code from its folder (auto_map) and lvlm never runs such code; "
                "use a tokenizer that transformers provides (e.g. save it with LlamaTokenizerFast)"
            ) from err
        raise
