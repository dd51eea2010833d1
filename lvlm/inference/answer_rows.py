"""Answers followed token by token inside a batched ``generate``: stop strings, own length limits, streaming.

``generate`` decodes a whole batch; each request in it has its own ``max_tokens``, ``stop`` strings and, when it
streams, a consumer of text deltas. :class:`RowTracker` is a ``StoppingCriteria`` that sees every new token of
every row, so a row that is done (end-of-sequence, a stop string, its own limit, or a client that went away)
is finished in place while the others go on. Greedy answers are therefore the same as one request alone.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
from transformers import PreTrainedTokenizerBase, StoppingCriteria


@dataclass
class AnswerRow:
    """One answer being generated.

    Attributes:
        max_tokens: most new tokens for this answer.
        stop: strings that end the answer (cut before them).
        on_text: receives each new piece of visible text, for streaming (None: no streaming).
        ids: new token ids so far (end-of-sequence excluded).
        text: the answer (final once ``finish_reason`` is set).
        finish_reason: ``stop`` (end-of-sequence or a stop string), ``length``, ``cancelled``, or None while running.
    """

    max_tokens: int
    stop: Sequence[str] = ()
    on_text: Callable[[str], None] | None = None
    ids: list[int] = field(default_factory=list)
    text: str = ""
    finish_reason: str | None = None
    _sent: str = ""
    _cancelled: threading.Event = field(default_factory=threading.Event)

    def cancel(self) -> None:
        """Stop generating for this row at the next token (its client went away)."""
        self._cancelled.set()

    def step(self, token: int, tokenizer: PreTrainedTokenizerBase, lock: threading.Lock) -> None:
        """Take the row's next generated token."""
        if self._cancelled.is_set():
            self.finish_reason = "cancelled"
            return
        if token == tokenizer.eos_token_id:
            self.finish("stop", tokenizer, lock)
            return
        self.ids.append(token)
        if self.stop or self.on_text is not None:
            self._update(tokenizer, lock)
        if self.finish_reason is None and len(self.ids) >= self.max_tokens:
            self.finish("length", tokenizer, lock)

    def finish(self, reason: str, tokenizer: PreTrainedTokenizerBase, lock: threading.Lock) -> None:
        """Set the final text (stop strings cut, surrounding whitespace stripped) and send what is left of it."""
        if self.finish_reason is not None:
            return
        self.finish_reason = reason
        text, hit = self._cut(self._decode(tokenizer, lock))
        if hit:
            self.finish_reason = "stop"
        self.text = text.strip()
        self._send(self.text)

    def _update(self, tokenizer: PreTrainedTokenizerBase, lock: threading.Lock) -> None:
        text, hit = self._cut(self._decode(tokenizer, lock))
        if hit:
            self.finish("stop", tokenizer, lock)
            return
        self._send(_visible(text, self.stop))

    def _decode(self, tokenizer: PreTrainedTokenizerBase, lock: threading.Lock) -> str:
        with lock:
            return tokenizer.decode(self.ids, skip_special_tokens=True).lstrip()

    def _cut(self, text: str) -> tuple[str, bool]:
        cuts = [text.find(s) for s in self.stop if s in text]
        return (text[: min(cuts)], True) if cuts else (text, False)

    def _send(self, visible: str) -> None:
        # Decoding is prefix-stable for the tokenizers lvlm uses; if it ever is not, later text is still sent whole
        # in the final (non-streamed) answer, and the stream sends nothing it would have to take back.
        if self.on_text is not None and visible.startswith(self._sent) and len(visible) > len(self._sent):
            self.on_text(visible[len(self._sent) :])
            self._sent = visible


def _visible(text: str, stop: Sequence[str]) -> str:
    """The part of unfinished text that can be sent now: not trailing whitespace (the final answer is stripped),
    not a half-decoded character, not the start of a stop string."""
    text = text.rstrip().rstrip("\ufffd")
    held = max((k for s in stop for k in range(1, len(s)) if text.endswith(s[:k])), default=0)
    return text[: len(text) - held].rstrip()


class RowTracker(StoppingCriteria):
    """A ``StoppingCriteria`` that feeds each row its new token and reports which rows are done.

    Args:
        rows: one :class:`AnswerRow` per prompt of the batch, in batch order.
        tokenizer: the checkpoint's tokenizer.
        lock: held while decoding (the tokenizer is shared with request threads).
        on_finish: called with a row's index as soon as it is done, so its answer need not wait for the batch.
    """

    def __init__(
        self,
        rows: Sequence[AnswerRow],
        tokenizer: PreTrainedTokenizerBase,
        lock: threading.Lock,
        on_finish: Callable[[int], None] | None = None,
    ) -> None:
        self.rows = list(rows)
        self.tokenizer = tokenizer
        self.lock = lock
        self.on_finish = on_finish

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor | None = None, **kwargs) -> torch.Tensor:
        for index, (row, token) in enumerate(zip(self.rows, input_ids[:, -1].tolist(), strict=True)):
            if row.finish_reason is None:
                row.step(token, self.tokenizer, self.lock)
                if row.finish_reason is not None and self.on_finish is not None:
                    self.on_finish(index)
        done = [row.finish_reason is not None for row in self.rows]
        return torch.tensor(done, dtype=torch.bool, device=input_ids.device)

    def finish_all(self) -> None:
        """Close rows ``generate`` ended first (the batch's own length limit)."""
        for row in self.rows:
            row.finish("length", self.tokenizer, self.lock)
