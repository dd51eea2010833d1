"""Token streaming to a terminal: transformers' ``TextStreamer``, writing to any text stream and flushing."""

from __future__ import annotations

import sys
from typing import TextIO

from transformers import PreTrainedTokenizerBase, TextStreamer


class TerminalStreamer(TextStreamer):
    """Print the answer word by word as ``generate(streamer=...)`` produces it (prompt and special tokens skipped).

    Args:
        tokenizer: the checkpoint's tokenizer.
        stream: where the text goes (standard output by default).
    """

    def __init__(self, tokenizer: PreTrainedTokenizerBase, stream: TextIO | None = None) -> None:
        super().__init__(tokenizer, skip_prompt=True, skip_special_tokens=True)
        self.stream = stream
        self._started = False

    def on_finalized_text(self, text: str, stream_end: bool = False) -> None:
        out = self.stream or sys.stdout
        if not self._started:
            # The template puts a space after "ASSISTANT:"; the first token carries it, the terminal does not need it.
            text = text.lstrip()
            self._started = bool(text)
        out.write(text)
        if stream_end:
            out.write("\n")
            self._started = False
        out.flush()
