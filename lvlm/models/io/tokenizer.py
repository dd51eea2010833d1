"""The one way lvlm loads a tokenizer: remote code disabled, never a question asked on stdin.

transformers asks on stdin whether to run a folder's code when ``trust_remote_code`` is left unset (``lvlm chat``
would answer that prompt from the user's own input); here it is always ``False`` and a folder that needs its
own code is refused with :class:`~lvlm.core.errors.UnsafeInputError` naming the folder.
"""

from __future__ import annotations

import os

from transformers import AutoTokenizer, PreTrainedTokenizerBase

from lvlm.core.errors import UnsafeInputError
from lvlm.models.io.hub import resolve_checkpoint_dir


def load_tokenizer(path_or_hub_id: str | os.PathLike[str]) -> PreTrainedTokenizerBase:
    """The tokenizer of a directory (or cached hub id); its pad token is its unk token when it has none
    (Vicuna has none; the original pads with unk, template v1).

    Raises:
        UnsafeInputError: the tokenizer needs code from its folder.
        OSError: no tokenizer there.
    """
    directory = resolve_checkpoint_dir(path_or_hub_id)
    try:
        tokenizer = AutoTokenizer.from_pretrained(os.fspath(directory), trust_remote_code=False)
    except ValueError as err:
        if "custom code" in str(err) or "trust_remote_code" in str(err):
            raise UnsafeInputError(
                f"{directory}: this tokenizer needs code from its folder (auto_map) and lvlm never runs such code; "
                "use a tokenizer that transformers provides (e.g. save it with LlamaTokenizerFast)"
            ) from err
        raise
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.unk_token
    return tokenizer
