"""How one answer is generated: its length limit, greedy or sampled decoding, its seed and its stop strings."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class GenerationSettings:
    """How an answer is generated.

    Greedy when ``temperature == 0``. The original evaluation called ``generate(do_sample=True, temperature=0.0)``,
    which errors or divides by zero depending on the transformers version: here sampling is only ever switched on
    with a positive temperature.

    Attributes:
        max_new_tokens: longest answer in tokens (shortened when the model's positions run out).
        temperature: 0 for greedy decoding; above 0 samples with this temperature.
        top_p: nucleus sampling mass (sampling only).
        seed: seeds the answer's own random generator, so a seeded answer is the same alone or in any batch.
        stop: strings that end the answer; it is cut before the first one.
    """

    max_new_tokens: int = 128
    temperature: float = 0.0
    top_p: float = 1.0
    seed: int | None = None
    stop: Sequence[str] = ()

    def __post_init__(self) -> None:
        if self.temperature < 0:
            raise ValueError(f"temperature must be >= 0 (0 = greedy), got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}")
        if self.max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be >= 1, got {self.max_new_tokens}")
        object.__setattr__(self, "stop", tuple(s for s in self.stop if s))
