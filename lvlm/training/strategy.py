"""`FSDP2Strategy`: Lightning's `ModelParallelStrategy` with the data-parallel size taken from the world size.

`ModelParallelStrategy`'s `"auto"` sizes mean tensor parallelism within a node and data parallelism across
nodes; lvlm shards with FSDP2 only (`tensor_parallel_size: 1`), so every rank is a data-parallel rank and a
recipe should not have to repeat `num_nodes x devices` (a stale value fails at start-up, far from the recipe).
"""

from __future__ import annotations

from typing import Any, Literal

from lightning.pytorch.strategies import ModelParallelStrategy


class FSDP2Strategy(ModelParallelStrategy):
    """Pure FSDP2 over every rank: `data_parallel_size` defaults to `num_nodes x devices`.

    Args:
        data_parallel_size: Ranks in the data-parallel (sharding) dimension; `"auto"`: the world size divided by
            `tensor_parallel_size`.
        tensor_parallel_size: 1 (lvlm's sharding plan is FSDP2 only).
        **kwargs: `ModelParallelStrategy`'s other arguments (`save_distributed_checkpoint`, `timeout`, ...).
    """

    def __init__(
        self, data_parallel_size: Literal["auto"] | int = "auto", tensor_parallel_size: int = 1, **kwargs: Any
    ) -> None:
        super().__init__(data_parallel_size=data_parallel_size, tensor_parallel_size=tensor_parallel_size, **kwargs)

    def setup_environment(self) -> None:
        if self._data_parallel_size == "auto":
            self._data_parallel_size = self.num_nodes * self.num_processes // self._tensor_parallel_size
        super().setup_environment()
