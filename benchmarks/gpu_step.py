"""A stage-2 training step of the Video-LLaVA-7B shape: FSDP2, bf16, activation checkpointing, packing on and off.

Model (`--preset 7b`): Vicuna-7B widths (d 4096, 32 layers, 32 heads, MLP 11008, vocabulary 32000), two
ViT-L/14 towers at 224 px (d 1024, 24 layers; image: 256 tokens; video: LanguageBind-style temporal attention,
8 frames x 257 tokens), the `mlp2x_gelu` projector; projector + LLM train, towers frozen (stage 2). Weights are
random (built on the device, no download). `--layers N` keeps N LLM layers to fit one card (say so when
reporting). `--preset tiny` is the same code on tiny widths in float32, for CPU and the test suite.

Batch: `--batch` samples per optimizer step drawn from the paper's stage-2 mix (`benchmarks/packing.py`'s
`MIXES["stage2"]`: 625K image, 40K text-only, 100K video conversations; text lengths modelled there), visual
tokens exact. Padded: one `[batch, longest]` micro-batch. Packed: `pack_batches` rows of at most
`--max-tokens` tokens, gradients accumulated over the rows, one optimizer step.

Printed per layout: step time (median of `--steps` after `--warmup`), useful tokens/s, peak memory (CUDA
allocator peak, or the process's peak RSS on CPU), and MFU = model FLOPs / (step time x `--peak-tflops`) with
model FLOPs = 6 x trainable-path LLM parameters x tokens + 12 x layers x d x sum(l^2) (causal attention, forward
and backward, per sample) + 2 x tower parameters x visual tokens (frozen, forward only) + recompute of the
checkpointed layers' forward. Runs under `torchrun --nproc_per_node=N` (FSDP2 over N ranks) or alone (one rank).

    python benchmarks/gpu_step.py --preset tiny --steps 2 --warmup 1          # CPU, seconds
    torchrun --nproc_per_node=1 benchmarks/gpu_step.py --preset 7b --layers 8 --json gpu_step.json
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.distributed as dist

sys.path.insert(0, str(Path(__file__).resolve().parent))
from packing import MIXES, PROMPT, Sample  # noqa: E402  (the stage-2 length model, shared)

PRESETS = {
    "7b": {
        "llm": dict(hidden_size=4096, intermediate_size=11008, num_hidden_layers=32, num_attention_heads=32,
                    num_key_value_heads=32, vocab_size=32000, max_position_embeddings=4096),
        "vision": dict(hidden_size=1024, intermediate_size=4096, num_hidden_layers=24, num_attention_heads=16,
                       image_size=224, patch_size=14, projection_dim=768),
        "text_scale": 1, "max_tokens": 16384, "batch": 16, "dtype": "bfloat16",
    },
    "tiny": {
        "llm": dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                    num_key_value_heads=4, vocab_size=256, max_position_embeddings=4096),
        "vision": dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                       image_size=28, patch_size=14, projection_dim=32),
        "text_scale": 16, "max_tokens": 512, "batch": 8, "dtype": "float32",  # CPU bf16 kernels are slow
    },
}  # fmt: skip
FRAMES = 8


def build(preset: dict, layers: int | None, device: torch.device):
    from lvlm.models.language_model import LanguageModel
    from lvlm.models.video_llava import VideoLLaVA
    from lvlm.models.vision.clip_tower import CLIPVisionTower, LanguageBindVideoTower
    from lvlm.training.trainability import Trainability

    llm_config = {"model_type": "llama", **preset["llm"]}
    if layers is not None:
        llm_config["num_hidden_layers"] = layers
    torch.manual_seed(0)
    with device:
        towers = {
            "image": CLIPVisionTower(preset["vision"], -2, "patch"),
            "video": LanguageBindVideoTower(preset["vision"], -2, "cls_patch", num_frames=FRAMES),
        }
        model = VideoLLaVA.build(LanguageModel(config=llm_config, torch_dtype=preset["dtype"]), towers)
    Trainability(train_projector=True, train_llm=True, train_vision=False).apply(model)
    return model


def draw_batch(model, preset: dict, count: int, rng: random.Random) -> list[tuple[Sample, list[str]]]:
    """`count` stage-2 samples: `(Sample, media kinds)`; visual tokens from the towers, text from the mix."""
    tokens = {"image": model.towers["image"].tokens_per_image, "video": model.towers["video"].tokens_per_frame * FRAMES}
    sources = list(MIXES["stage2"].values())
    out = []
    for _ in range(count):
        _, visual, median, sigma = rng.choices(sources, weights=[s[0] for s in sources])[0]
        kinds = [] if visual == 0 else ["image"] if visual == 256 else ["video"]
        text = max(8, round(rng.lognormvariate(0, sigma) * median / preset["text_scale"]))
        length = PROMPT // preset["text_scale"] + sum(tokens[k] for k in kinds) + text
        out.append((Sample(range(length), kinds), kinds))
    return out


def tensors(model, samples, packed: bool, device: torch.device) -> dict:
    """The batch dict of one micro-batch (packed row, or right-padded rows)."""
    ids, labels, media = [], [], {"image": 0, "video": 0}
    g = torch.Generator().manual_seed(len(samples))
    for sample, kinds in samples:
        count = {
            "image": model.towers["image"].tokens_per_image,
            "video": model.towers["video"].tokens_per_frame * FRAMES,
        }
        visual = [model.modalities[k].token_id for k in kinds for _ in range(count[k])]
        text = torch.randint(5, 200, (len(sample.tokens) - len(visual),), generator=g).tolist()
        row = text[:4] + visual + text[4:]
        answer = len(text[4:]) // 2
        ids.append(torch.tensor(row))
        labels.append(torch.tensor([-100] * (len(row) - answer) + row[len(row) - answer :]))
        for k in kinds:
            media[k] += 1
    batch = {}
    if packed:
        batch["input_ids"], batch["labels"] = torch.cat(ids)[None], torch.cat(labels)[None]
        batch["position_ids"] = torch.cat([torch.arange(len(r)) for r in ids])[None]
    else:
        batch["input_ids"] = torch.nn.utils.rnn.pad_sequence(ids, batch_first=True, padding_value=0)
        batch["labels"] = torch.nn.utils.rnn.pad_sequence(labels, batch_first=True, padding_value=-100)
        lengths = torch.tensor([len(r) for r in ids])
        batch["attention_mask"] = (torch.arange(batch["input_ids"].shape[1])[None] < lengths[:, None]).long()
    size = model.towers["image"].preprocessing.size
    if media["image"]:
        batch["images"] = torch.randint(0, 256, (media["image"], 3, size, size), dtype=torch.uint8)
    if media["video"]:
        batch["videos"] = torch.randint(0, 256, (media["video"], FRAMES, 3, size, size), dtype=torch.uint8)
    return {k: v.to(device) for k, v in batch.items()}


def model_flops(model, samples, layers_checkpointed: bool) -> float:
    llm = model.llm.config
    n_llm = sum(p.numel() for p in model.llm.parameters()) - llm.vocab_size * llm.hidden_size  # no input table
    n_towers = {k: sum(p.numel() for p in t.parameters()) for k, t in model.towers.items()}
    lengths = [len(s.tokens) for s, _ in samples]
    tokens, squares = sum(lengths), sum(n * n for n in lengths)
    attention = 12 * llm.num_hidden_layers * llm.hidden_size * squares / 2  # causal: half the square
    recompute = (2 * n_llm * tokens + attention / 3) if layers_checkpointed else 0.0
    items = {k: sum(k in kinds for _, kinds in samples) for k in n_towers}
    patches = model.towers["video"].tokens_per_frame  # CLS + patches per image or frame
    towers = 2 * patches * (n_towers["image"] * items["image"] + n_towers["video"] * FRAMES * items["video"])
    return 6 * n_llm * tokens + attention + recompute + towers


def peak_memory_gib(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**30
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def run(args: argparse.Namespace) -> dict:
    from torch.distributed.device_mesh import init_device_mesh

    from lvlm.data.packing import pack_batches
    from lvlm.training.sharding import MixedPrecision, apply_activation_checkpointing, shard_model

    cuda = torch.cuda.is_available() and args.preset != "tiny"
    rank = int(os.environ.get("RANK", 0))
    device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0))) if cuda else torch.device("cpu")
    if not dist.is_initialized():
        if "RANK" not in os.environ:
            os.environ.update(RANK="0", WORLD_SIZE="1", MASTER_ADDR="127.0.0.1", MASTER_PORT=str(args.port))
        dist.init_process_group("nccl" if cuda else "gloo")
    preset = PRESETS[args.preset]
    model = build(preset, args.layers, device)
    if not args.no_checkpointing:
        apply_activation_checkpointing(model)
    mesh = init_device_mesh(device.type, (dist.get_world_size(),))
    shard_model(model, mesh, mixed_precision=MixedPrecision(param_dtype=preset["dtype"], reduce_dtype="float32"))
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-5)
    rng = random.Random(rank)
    results = {}
    for layout in ("padded", "packed"):
        times, useful, flops = [], 0, 0.0
        if cuda:
            torch.cuda.reset_peak_memory_stats(device)
        for step in range(args.warmup + args.steps):
            samples = draw_batch(model, preset, args.batch or preset["batch"], rng)
            if layout == "packed":
                rows = list(pack_batches(iter([s for s, _ in samples]), args.max_tokens or preset["max_tokens"],
                                         random.Random(step), by_modality=False))  # fmt: skip
                by_id = {id(s): (s, k) for s, k in samples}
                micro = [[by_id[id(s)] for s in row] for row in rows]
            else:
                micro = [samples]
            start = time.perf_counter()
            for part in micro:
                loss = model(**tensors(model, part, layout == "packed", device), use_cache=False, loss_only=True).loss
                (loss / len(micro)).backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            if cuda:
                torch.cuda.synchronize(device)
            if step >= args.warmup:
                times.append(time.perf_counter() - start)
                useful += sum(len(s.tokens) for s, _ in samples)
                flops += model_flops(model, samples, not args.no_checkpointing)
        step_time = statistics.median(times)
        seconds = sum(times)
        mfu = flops / seconds / (args.peak_tflops * 1e12) if args.peak_tflops else None
        results[layout] = {
            "step_time_s": round(step_time, 4),
            "tokens_per_s": round(useful / seconds, 1),
            "peak_memory_gib": round(peak_memory_gib(device), 2),
            "mfu": None if mfu is None else round(mfu, 4),
            "micro_batches_per_step": len(micro),
        }
        if rank == 0:
            r = results[layout]
            mfu_text = "n/a (give --peak-tflops)" if mfu is None else f"{mfu:.1%}"
            print(
                f"{layout:7s} step {r['step_time_s']:.3f} s  tokens/s {r['tokens_per_s']:.0f}  "
                f"peak memory {r['peak_memory_gib']:.2f} GiB  MFU {mfu_text}  micro-batches {len(micro)}"
            )
    info = {"device": torch.cuda.get_device_name(device) if cuda else "cpu", "world_size": dist.get_world_size()}
    dist.destroy_process_group()
    return {"layouts": results, "settings": vars(args) | info}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--preset", choices=sorted(PRESETS), default="7b")
    parser.add_argument("--layers", type=int, help="LLM layers kept (default: the preset's)")
    parser.add_argument("--batch", type=int, help="samples per optimizer step (default: the preset's)")
    parser.add_argument("--max-tokens", type=int, help="packing budget per micro-batch (default: the preset's)")
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--no-checkpointing", action="store_true", help="no activation checkpointing")
    parser.add_argument("--peak-tflops", type=float, help="the card's dense bf16 peak (H100/H200 SXM: 989)")
    parser.add_argument("--port", type=int, default=29517, help="rendezvous port when run without torchrun")
    parser.add_argument("--json", help="write the results here (rank 0)")
    args = parser.parse_args()
    result = run(args)
    if args.json and int(os.environ.get("RANK", 0)) == 0:
        Path(args.json).write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
