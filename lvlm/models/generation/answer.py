"""One answer being generated: its tokens, its text, stop strings checked token by token, and streaming.

Each new token's text comes from :class:`~lvlm.models.generation.detokenizer.IncrementalText`; stop strings are
searched only where the new text could complete one. A streaming answer sends its visible text as it grows,
holding back trailing whitespace (the final answer is stripped) and any end of the text that could be the start
of a stop string, so that the pieces sent always add up to the final answer.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from contextlib import nullcontext

from transformers import PreTrainedTokenizerBase

from lvlm.models.generation.detokenizer import IncrementalText
from lvlm.models.generation.settings import GenerationSettings


class Answer:
    """An answer to one prompt.

    Args:
        settings: its length limit, sampling and stop strings.
        on_text: receives each new piece of visible text, for streaming (None: no streaming).

    Attributes:
        ids: new token ids so far (end-of-sequence excluded).
        text: the answer, final once ``finish_reason`` is set.
        finish_reason: ``stop`` (end-of-sequence or a stop string), ``length``, ``cancelled``; None while running.
    """

    def __init__(self, settings: GenerationSettings, on_text: Callable[[str], None] | None = None) -> None:
        self.settings = settings
        self.on_text = on_text
        self.ids: list[int] = []
        self.text = ""
        self.finish_reason: str | None = None
        self.max_tokens = settings.max_new_tokens
        self._detokenizer: IncrementalText | None = None
        self._sent = ""
        self._cancelled = threading.Event()

    def cancel(self) -> None:
        """Stop generating this answer at its next token (its client went away)."""
        self._cancelled.set()

    def start(self, tokenizer: PreTrainedTokenizerBase, context: Sequence[int], room: int) -> None:
        """Begin after the prompt (its last ids give the first token's text its context), with ``room`` positions
        left in the model."""
        self._detokenizer = IncrementalText(tokenizer, context)
        self.max_tokens = max(1, min(self.settings.max_new_tokens, room))

    def step(self, token: int, eos_id: int | None, lock: threading.Lock | None = None) -> None:
        """Take the answer's next generated token."""
        if self._cancelled.is_set():
            self.finish_reason = "cancelled"
            return
        if token == eos_id:
            self._finish("stop")
            return
        self.ids.append(token)
        with lock or nullcontext():
            before = len(self._detokenizer.text)
            self._detokenizer.add(token)
        if self._stop_at(before):
            self._finish("stop")
        elif len(self.ids) >= self.max_tokens:
            self._finish("length")
        elif self.on_text is not None:
            self._send(self._visible())

    def _stop_at(self, before: int) -> bool:
        """Cut the text at the first stop string the new text completes; whether there was one."""
        text = self._detokenizer.text
        found = [i for s in self.settings.stop if (i := text.find(s, max(0, before - len(s) + 1))) >= 0]
        if found:
            self._detokenizer.text = text[: min(found)]
        return bool(found)

    def _visible(self) -> str:
        """What of unfinished text can be sent: not trailing whitespace, not the start of a stop string."""
        text = self._detokenizer.text.strip()
        held = max((k for s in self.settings.stop for k in range(1, len(s)) if text.endswith(s[:k])), default=0)
        return text[: len(text) - held].rstrip()

    def _finish(self, reason: str) -> None:
        self.finish_reason = reason
        self.text = self._detokenizer.text.strip()
        if self.on_text is not None:
            self._send(self.text)

    def _send(self, visible: str) -> None:
        if len(visible) > len(self._sent) and visible.startswith(self._sent):
            self.on_text(visible[len(self._sent) :])
            self._sent = visible
