"""Incremental detokenization: each new token's text from a few tokens of look-back, never the whole answer.

Decoding token ``i`` alone loses what depends on its neighbours (SentencePiece's leading space, a character split
over several byte tokens), and decoding the whole answer at every token costs quadratic time. As vLLM's and TGI's
detokenizers do, :class:`IncrementalText` decodes the tokens since ``prefix`` twice, without and with the new
ones, and emits the difference; text ending in a half character (U+FFFD) waits for the next token.
"""

from __future__ import annotations

from collections.abc import Sequence

from transformers import PreTrainedTokenizerBase

LOOK_BACK = 5  # prompt tokens decoded in front of the first answer token (its leading space depends on them)


class IncrementalText:
    """The text of an answer, grown token by token.

    Args:
        tokenizer: the checkpoint's tokenizer.
        context: the prompt's last token ids (decoded for context only; their text is never emitted).
    """

    def __init__(self, tokenizer: PreTrainedTokenizerBase, context: Sequence[int] = ()) -> None:
        self.tokenizer = tokenizer
        self.ids = list(context)[-LOOK_BACK:]
        self.prefix = 0  # first id decoded for context
        self.read = len(self.ids)  # ids before this are already text
        self.text = ""

    def add(self, token: int) -> str:
        """Take the next token; returns the new text it completes (may be empty)."""
        self.ids.append(token)
        before = self._decode(self.ids[self.prefix : self.read])
        after = self._decode(self.ids[self.prefix :])
        if len(after) <= len(before) or after.endswith("\ufffd"):
            return ""
        delta = after[len(before) :]
        self.prefix, self.read = self.read, len(self.ids)
        self.text += delta
        return delta

    def _decode(self, ids: list[int]) -> str:
        return self.tokenizer.decode(ids, skip_special_tokens=True) if ids else ""
