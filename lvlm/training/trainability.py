"""Which parameters train: explicit flags instead of stage names, and the start-up table that says so.

Stage 1 (pretrain) is ``train_projector`` only; stage 2 (finetune) adds ``train_llm``; the LoRA recipe
trains the projector and the adapters that :mod:`lvlm.training.lora` adds to the LLM. Towers stay frozen
(and in eval mode) unless ``train_vision``.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from lvlm.training.lora import is_lora_parameter


@dataclass(frozen=True)
class Trainability:
    """The flags of a run.

    Attributes:
        train_projector: the shared projector learns (both stages of the paper).
        train_llm: every LLM weight learns (stage 2 full finetune), embeddings and head included.
        train_vision: the towers learn (never in the paper; an option for ablations).
        lora: LoRA adapters on the LLM learn, its base weights stay frozen (exclusive with ``train_llm``).
    """

    train_projector: bool = True
    train_llm: bool = False
    train_vision: bool = False
    lora: bool = False

    def __post_init__(self) -> None:
        if self.lora and self.train_llm:
            raise ValueError(
                "train_llm: true and lora together would train the whole LLM and the adapters; "
                "set train_llm: false for a LoRA recipe"
            )

    def apply(self, model: nn.Module) -> None:
        """Set ``requires_grad`` on a :class:`~lvlm.models.video_llava.VideoLLaVA` (adapters already added)."""
        for tower in model.towers.values():
            if self.train_vision:
                tower.unfreeze()
            else:
                tower.freeze()
        model.projector.requires_grad_(self.train_projector)
        for name, param in model.llm.named_parameters():
            param.requires_grad_(self.train_llm or (self.lora and is_lora_parameter(name)))


def components(model: nn.Module) -> dict[str, nn.Module]:
    """The model's parts as the table shows them: one row per tower, the projector, the LLM."""
    parts = {f"towers.{name}": tower for name, tower in model.towers.items()}
    return parts | {"projector": model.projector, "llm": model.llm}


def parameter_counts(model: nn.Module) -> dict[str, tuple[int, int]]:
    """``component -> (trainable, frozen)`` parameter counts."""
    counts = {}
    for name, module in components(model).items():
        trainable = sum(p.numel() for p in module.parameters() if p.requires_grad)
        total = sum(p.numel() for p in module.parameters())
        counts[name] = (trainable, total - trainable)
    return counts


def _human(n: int) -> str:
    for unit, scale in (("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if n >= scale:
            return f"{n / scale:.2f}{unit}"
    return str(n)


def trainability_table(counts: dict[str, tuple[int, int]]) -> str:
    """A fixed-width table: component, status, trainable and frozen parameters, plus a total line."""
    # Not Lightning's ModelSummary alone (it still prints): it counts trainable parameters in totals, not per
    # component (each tower, the projector, the LLM), which is what a recipe's flags choose.
    lines = [f"{'component':<16}{'status':<11}{'trainable':>12}{'frozen':>12}"]
    for name, (trainable, frozen) in counts.items():
        status = "frozen" if not trainable else "trainable" if not frozen else "partial"
        lines.append(f"{name:<16}{status:<11}{_human(trainable):>12}{_human(frozen):>12}")
    total_trainable = sum(t for t, _ in counts.values())
    total_frozen = sum(f for _, f in counts.values())
    lines.append(f"{'total':<16}{'':<11}{_human(total_trainable):>12}{_human(total_frozen):>12}")
    return "\n".join(lines)
