"""Two CPU processes with torch.distributed (gloo): equal batch counts over uneven shards, exact eval partition,
and the exact single pass of the training stream, unpacked and packed (2 ranks x 2 workers)."""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from shard_fixtures import good_samples, make_datamodule, write_shards

WORLD_SIZE = 2


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _run_rank(rank: int, port: int, pattern: str, run_dir: str, out_dir: str) -> None:
    os.environ["MASTER_ADDR"], os.environ["MASTER_PORT"] = "127.0.0.1", str(port)
    os.environ.pop("RANK", None)  # rank comes from torch.distributed, as under Lightning's DDP launcher
    dist.init_process_group("gloo", rank=rank, world_size=WORLD_SIZE)
    try:
        dm = make_datamodule(
            Path(run_dir),
            sources={"train": [{"pattern": pattern}], "val": [{"pattern": pattern}]},
            sampling={"batches_per_epoch": 5},
            loader={"num_workers": 2},
        )
        train_keys = [batch["keys"] for batch in dm.train_dataloader()]
        val_keys = [batch["keys"] for batch in dm.val_dataloader()]
        single = make_datamodule(
            Path(run_dir),
            sources={"train": [{"pattern": pattern}]},
            sampling={"mode": "single_pass", "batches_per_epoch": None},
            loader={"num_workers": 2, "batch_size": 3},
        )
        single_keys = [batch["keys"] for batch in single.train_dataloader()]
        packed = make_datamodule(
            Path(run_dir),
            sources={"train": [{"pattern": pattern}]},
            sampling={"mode": "single_pass", "batches_per_epoch": None},
            loader={"num_workers": 2, "max_tokens_per_batch": 128},
        )
        packed_keys = [[batch["keys"], batch.get("filler", False)] for batch in packed.train_dataloader()]
        result = {"rank": dm.rank, "world_size": dm.world_size, "train": train_keys, "val": val_keys}
        result["single_pass"], result["packed"] = single_keys, packed_keys
        gathered: list[dict | None] = [None] * WORLD_SIZE
        dist.all_gather_object(gathered, result)
        if rank == 0:
            Path(out_dir, "result.json").write_text(json.dumps(gathered))
    finally:
        dist.destroy_process_group()


def test_two_ranks_get_equal_batch_counts_and_an_exact_eval_partition(tmp_path: Path) -> None:
    shards = [good_samples("a", 10), good_samples("b", 10), good_samples("c", 5)]  # uneven: 10 / 10 / 5
    pattern = write_shards(tmp_path / "shards", "uneven", shards)
    # fork: the ranks reuse this process's imports (spawned ranks re-import torch/transformers: minutes on a busy CI)
    mp.start_processes(
        _run_rank,
        args=(_free_port(), pattern, str(tmp_path / "run"), str(tmp_path)),
        nprocs=WORLD_SIZE,
        join=True,
        start_method="fork",
    )
    results = json.loads((tmp_path / "result.json").read_text())
    assert [r["rank"] for r in results] == [0, 1] and {r["world_size"] for r in results} == {2}
    # Training (resampled): exactly batches_per_epoch full batches on every rank, different streams per rank.
    assert [len(r["train"]) for r in results] == [5, 5]
    assert all(len(batch) == 2 for r in results for batch in r["train"])
    assert results[0]["train"] != results[1]["train"]
    # Validation (finite, no resampling): same batch count per rank, every sample exactly once overall.
    assert [len(r["val"]) for r in results] == [7, 7]
    seen = [key for r in results for batch in r["val"] for key in batch]
    everything = [s["__key__"] for shard in shards for s in shard]
    assert sorted(seen) == sorted(everything) and len(seen) == len(set(seen)) == 25
    assert torch.tensor([len(b) for b in results[0]["val"]]).sum() == 12  # rank 0: samples 0..11 of 25
    # Training, single pass (2 ranks x 2 workers): every key exactly once, ceil(12 / 3) = 4 batches on each rank.
    assert [len(r["single_pass"]) for r in results] == [4, 4]
    seen = [key for r in results for batch in r["single_pass"] for key in batch]
    assert sorted(seen) == sorted(everything) and len(seen) == len(set(seen)) == 25
    # Packed single pass (2 ranks x 2 workers): every key exactly once in real rows, the same count on each rank.
    assert len(results[0]["packed"]) == len(results[1]["packed"]) < 25
    seen = [key for r in results for keys, filler in r["packed"] if not filler for key in keys]
    assert sorted(seen) == sorted(everything) and len(seen) == 25
