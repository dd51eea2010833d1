"""FSDP2 (``fully_shard``) plan and activation checkpointing for :class:`~lvlm.models.video_llava.VideoLLaVA`.

One FSDP unit per LLM decoder layer and per tower block (each tower's ``block_classes``), one per tower
for its remaining weights (embeddings, norms), one for the projector, and the root for the LLM's
embeddings, final norm and head. Frozen and trainable weights therefore never share a unit (FSDP2
allows it, but separate units keep gradient memory honest). The lit module calls ``self.model(...)``, so
the root unit's all-gather runs in ``forward`` (FSDP2 gathers on ``__call__`` only). No unit whose output
leaves the model's own code (towers, projector) returns a view (:func:`_never_a_view`).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Any, Literal

import torch
from torch import nn

Dtype = Literal["float32", "bfloat16", "float16"]


@dataclass(frozen=True)
class MixedPrecision:
    """FSDP2's ``MixedPrecisionPolicy``: compute (``param_dtype``), gradient reduction and output dtypes."""

    param_dtype: Dtype | None = None
    reduce_dtype: Dtype | None = None
    output_dtype: Dtype | None = None
    cast_forward_inputs: bool = True


@dataclass(frozen=True)
class FSDPSettings:
    """The ``model.sharding.fsdp`` block: used under ``ModelParallelStrategy`` (FSDP2).

    Attributes:
        mixed_precision: None for full precision; ``{param_dtype: bfloat16, reduce_dtype: float32}`` for the paper.
        reshard_after_forward: free gathered parameters after forward (ZeRO-3); False keeps them (ZeRO-2).
    """

    mixed_precision: MixedPrecision | None = None
    reshard_after_forward: bool = True


def mixed_precision_policy(settings: MixedPrecision | None):
    """FSDP2's ``MixedPrecisionPolicy`` (None: full precision)."""
    from torch.distributed.fsdp import MixedPrecisionPolicy

    if settings is None:
        return MixedPrecisionPolicy()
    dtypes = {
        k: getattr(torch, v) for k in ("param_dtype", "reduce_dtype", "output_dtype") if (v := getattr(settings, k))
    }
    return MixedPrecisionPolicy(**dtypes, cast_forward_inputs=settings.cast_forward_inputs)


def apply_activation_checkpointing(model: nn.Module) -> int:
    """Wrap every LLM decoder layer in a non-reentrant checkpoint wrapper; returns how many were wrapped.

    Applied before sharding. The wrapper's state-dict hooks strip ``_checkpoint_wrapped_module``, so
    checkpoint keys do not change.
    """
    from torch.distributed.algorithms._checkpoint.checkpoint_wrapper import (
        CheckpointImpl,
        checkpoint_wrapper,
    )
    from torch.distributed.algorithms._checkpoint.checkpoint_wrapper import (
        apply_activation_checkpointing as apply,
    )

    classes = model.llm.block_classes
    wrapper = partial(checkpoint_wrapper, checkpoint_impl=CheckpointImpl.NO_REENTRANT)
    apply(model.llm, checkpoint_wrapper_fn=wrapper, check_fn=lambda m: isinstance(m, classes))
    return sum(1 for m in model.llm.modules() if type(m).__name__ == "CheckpointWrapper")


def shard_model(
    model: nn.Module, mesh: Any, mixed_precision: MixedPrecision | None = None, reshard_after_forward: bool = True
) -> int:
    """``fully_shard`` the model in place over ``mesh`` (a 1-D data-parallel mesh); returns the unit count."""
    from torch.distributed.fsdp import fully_shard

    shard = partial(
        fully_shard,
        mesh=mesh,
        mp_policy=mixed_precision_policy(mixed_precision),
        reshard_after_forward=reshard_after_forward,
    )
    units = 0
    for tower in model.towers.values():
        for block in [m for m in tower.modules() if isinstance(m, tower.block_classes)]:
            shard(block)
            units += 1
        tower.register_forward_hook(_never_a_view)  # before fully_shard: FSDP2's own hook then sees the copy
        shard(tower)
        units += 1
    for layer in model.llm.decoder_layers:  # the checkpoint wrappers, when activation checkpointing is on
        shard(layer)
        units += 1
    model.projector.register_forward_hook(_never_a_view)
    shard(model.projector)
    shard(model)
    return units + 2


def _never_a_view(module: nn.Module, args: Any, output: Any) -> Any:
    """A copy of a unit's output that is a view needing gradients, else None (the output unchanged).

    FSDP2 hooks a unit's output to run the backward all-gather; an in-place op on a *view* of it (``x += y``)
    would drop that hook and skip the all-gather, so torch warns at every step. Towers return views when they
    train (features sliced past CLS, videos reshaped) and so may a plugin's projector (an identity returns its
    input); the copy costs one output per step, for those only. ``VideoLLaVA.encode`` gives the projector
    ``[(n k), d]`` features, so a linear projector's output is never a view and is not copied.
    """
    if isinstance(output, torch.Tensor) and output.requires_grad and output._base is not None:
        return output.clone()
    return None
