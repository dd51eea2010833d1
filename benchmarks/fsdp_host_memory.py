"""Host memory per rank when FSDP2 loads the LLM: meta build + per-rank shard reads vs one whole load.

A random Llama checkpoint whose weights dominate a process's memory (`--width`, `--layers`) is written once in
bf16 and loaded in fp32, as `recipes/finetune.yaml` loads Vicuna (fp16 on disk, fp32 master weights). Then,
each in a fresh process:

- single: `LanguageModel(pretrained=DIR, torch_dtype="float32")`, what every rank did before (the whole LLM in
  host memory);
- 2 ranks (gloo, CPU): `lvlm.training.meta_init.meta_llm` builds the LLM on meta, `VideoLLaVA.build` adds the
  placeholder tokens (tiny towers), `shard_model` applies FSDP2 over both ranks, `load_llm_shards` reads each
  rank's rows, as `LVLMModule.configure_model` does under `ModelParallelStrategy`.

Peak RSS is `resource.getrusage(RUSAGE_SELF).ru_maxrss` (the process's high-water mark, Python and torch
included) read right after loading; the ratio is the larger rank's peak over the whole load's, both measured in
this run. After the reading, every rank checks its shards against the checkpoint
(exact equality; the added rows against the mean row).

    python benchmarks/fsdp_host_memory.py --json fsdp_host_memory.json
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import resource
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

TARGET = 0.55  # issue 21: every rank at most 0.55 of one whole load


def write_checkpoint(directory: Path, width: int, layers: int) -> None:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=32000,
        hidden_size=width,
        intermediate_size=width * 8 // 3,
        num_hidden_layers=layers,
        num_attention_heads=max(1, width // 128),
        max_position_embeddings=4096,
    )
    LlamaForCausalLM(config).to(torch.bfloat16).save_pretrained(directory)


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def single(directory: Path) -> dict:
    from lvlm.models.language_model import LanguageModel

    llm = LanguageModel(pretrained=str(directory), torch_dtype="float32")
    return {"peak_rss_mib": peak_rss_mib(), "parameters": sum(p.numel() for p in llm.parameters())}


def rank(directory: Path) -> dict:
    import torch
    import torch.distributed as dist
    from safetensors import safe_open
    from torch.distributed.device_mesh import init_device_mesh

    from lvlm.models.language_model import LanguageModel
    from lvlm.models.video_llava import VideoLLaVA
    from lvlm.models.vision.clip_tower import CLIPVisionTower
    from lvlm.training.meta_init import PREFIX, load_llm_shards, meta_llm
    from lvlm.training.sharding import shard_model

    dist.init_process_group("gloo")
    vision = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=4, image_size=28)
    towers = {
        "image": CLIPVisionTower(vision | {"patch_size": 14}),
        "video": CLIPVisionTower(vision | {"patch_size": 14}),
    }
    llm, path = meta_llm(functools.partial(LanguageModel, pretrained=str(directory), torch_dtype="float32"))
    model = VideoLLaVA.build(llm, towers)
    shard_model(model, init_device_mesh("cpu", (dist.get_world_size(),)))
    filled = load_llm_shards(model, path)
    peak = peak_rss_mib()
    mismatched = 0
    with safe_open(str(path / "model.safetensors"), "pt") as checkpoint:
        for name, param in model.named_parameters():
            if not name.startswith(PREFIX):
                continue
            key = name.removeprefix(PREFIX).replace("._checkpoint_wrapped_module", "")
            local, full = param.to_local(), checkpoint.get_slice(key)
            start = dist.get_rank() * -(-param.shape[0] // dist.get_world_size())
            known = full.get_shape()[0]
            expected = full[start : min(known, start + local.shape[0])]
            if local.shape[0] > expected.shape[0]:  # added placeholder rows: the checkpoint's mean row
                mean = checkpoint.get_tensor(key).float().mean(0)
                expected = torch.cat([expected, mean.expand(local.shape[0] - expected.shape[0], -1)])
            mismatched += int(not torch.equal(local, expected.to(local.dtype)))
    dist.destroy_process_group()
    return {"peak_rss_mib": peak, "filled": filled, "mismatched": mismatched}


def launch(role: str, directory: Path, world: int = 1) -> list[dict]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    procs = []
    for r in range(world):
        env = os.environ | {
            "RANK": str(r),
            "WORLD_SIZE": str(world),
            "MASTER_ADDR": "127.0.0.1",
            "MASTER_PORT": str(port),
        }
        args = [sys.executable, __file__, "--role", role, "--dir", str(directory)]
        procs.append(subprocess.Popen(args, env=env, stdout=subprocess.PIPE, text=True))
    outs = [p.communicate()[0] for p in procs]
    if any(p.returncode for p in procs):
        raise SystemExit(f"{role} failed: exit codes {[p.returncode for p in procs]}")
    return [json.loads(out.strip().splitlines()[-1]) for out in outs]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--width", type=int, default=2048)
    parser.add_argument("--layers", type=int, default=20)
    parser.add_argument("--json", help="write the results here")
    parser.add_argument("--role", choices=["single", "rank"], help=argparse.SUPPRESS)
    parser.add_argument("--dir", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.role:
        print(json.dumps(single(args.dir) if args.role == "single" else rank(args.dir)))
        return
    with tempfile.TemporaryDirectory(prefix="lvlm-fsdp-memory-") as tmp:
        directory = Path(tmp)
        subprocess.run([sys.executable, "-c", f"import sys; sys.path.insert(0, {str(Path(__file__).parent)!r}); "
                        f"from fsdp_host_memory import write_checkpoint; from pathlib import Path; "
                        f"write_checkpoint(Path({tmp!r}), {args.width}, {args.layers})"], check=True)  # fmt: skip
        weights_mib = sum(p.stat().st_size for p in directory.glob("*.safetensors")) / 2**20
        (one,) = launch("single", directory)
        ranks = launch("rank", directory, world=2)
    per_rank = [round(r["peak_rss_mib"], 1) for r in ranks]
    result = {
        "peak_rss_per_rank_mib": per_rank,
        "single_process_peak_rss_mib": round(one["peak_rss_mib"], 1),
        "ratio": round(max(per_rank) / one["peak_rss_mib"], 3),
        "target": TARGET,
        "weights_mib": round(weights_mib, 1),
        "parameters": one["parameters"],
        "shards_filled_per_rank": [r["filled"] for r in ranks],
        "shards_mismatched": sum(r["mismatched"] for r in ranks),
    }
    print(f"LLM checkpoint {weights_mib:.0f} MiB ({one['parameters'] / 1e6:.0f} M parameters, bf16; loaded in fp32)")
    print(f"single process, whole load: peak RSS {result['single_process_peak_rss_mib']:.0f} MiB")
    print(f"2 FSDP2 ranks, meta + shard reads: peak RSS {per_rank} MiB")
    print(f"ratio max(rank) / whole load: {result['ratio']:.3f} (target <= {TARGET})")
    print(f"shards checked against the checkpoint: {result['shards_mismatched']} mismatched")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
