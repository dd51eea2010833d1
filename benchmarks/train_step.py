"""One training step of lvlm's VideoLLaVA vs transformers' VideoLlavaForConditionalGeneration on CPU.

Same weights (one random ``video_llava`` checkpoint written once, read by both), same mixed batch (one sample
with an image, one with an 8-frame video, right-padded), same trainable set (projector + LLM; towers frozen),
same optimizer (AdamW). A step is ``zero_grad → forward (with labels) → backward → optimizer.step``; lvlm's
forward runs as its training step does (``loss_only=True``: the LM head only where a target is predicted;
``drop_padding=True``: the LLM only on real tokens, the rows back to back), with ``full_vocabulary_loss=True`` so
that its loss is transformers' (placeholder rows included). ``--padded`` keeps the padding (lvlm before
``drop_padding``).

Timing: median wall time of ``--steps`` steps after ``--warmup`` steps, in ``--rounds`` fresh processes per side
run in alternating order (hf, lvlm, lvlm, hf, ...); the best round per side is reported, and every round printed.
Memory: each side runs in a fresh subprocess; ``peak RSS`` is ``resource.getrusage(RUSAGE_SELF).ru_maxrss``
at the end (the process's high-water mark), ``after load`` is the same reading taken once the model and batch
are built and before the first step, so ``training peak − after load`` is what the steps themselves add
(activations, gradients, AdamW state). Both include the Python/torch baseline equally.

    python benchmarks/train_step.py                 # mid-size config: 4-layer ViT d=256, 4-layer Llama d=512
    python benchmarks/train_step.py --steps 10 --threads 2 --json out.json

It prints figures and ratios (``--json`` writes them too) and asserts nothing about time.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

IMAGE_ID, VIDEO_ID, PAD_ID = 4000, 4001, 0
SIZE, PATCH, FRAMES = 112, 14, 8  # 64 patches: 64 image tokens (CLS dropped), 65 per video frame (CLS kept)


def build_checkpoint(directory: Path) -> None:
    import torch
    from transformers import CLIPVisionConfig, LlamaConfig, VideoLlavaConfig, VideoLlavaForConditionalGeneration

    torch.manual_seed(0)
    vision = CLIPVisionConfig(
        hidden_size=256,
        intermediate_size=1024,
        num_hidden_layers=4,
        num_attention_heads=4,
        image_size=SIZE,
        patch_size=PATCH,
        projection_dim=256,
    )
    text = LlamaConfig(
        vocab_size=4096,
        hidden_size=512,
        intermediate_size=1376,
        num_hidden_layers=4,
        num_attention_heads=8,
        num_key_value_heads=8,
        max_position_embeddings=2048,
        pad_token_id=PAD_ID,
    )
    tokens = (SIZE // PATCH) ** 2
    config = VideoLlavaConfig(
        vision_config=vision,
        text_config=text,
        image_token_index=IMAGE_ID,
        video_token_index=VIDEO_ID,
        image_seq_length=tokens,
        video_seq_length=(tokens + 1) * FRAMES,
    )
    VideoLlavaForConditionalGeneration(config).save_pretrained(directory)


def make_batch(text_tokens: int = 48) -> dict:
    import torch

    g = torch.Generator().manual_seed(0)
    tokens = (SIZE // PATCH) ** 2
    rows = [
        [1] + [IMAGE_ID] * tokens + torch.randint(5, 4000, (text_tokens,), generator=g).tolist(),
        [1] + [VIDEO_ID] * (tokens + 1) * FRAMES + torch.randint(5, 4000, (text_tokens,), generator=g).tolist(),
    ]
    length = max(map(len, rows))
    ids = torch.full((2, length), PAD_ID)
    mask = torch.zeros(2, length, dtype=torch.long)
    for i, row in enumerate(rows):
        ids[i, : len(row)], mask[i, : len(row)] = torch.tensor(row), 1
    labels = torch.where(mask.bool() & (ids < IMAGE_ID), ids, -100)
    images = torch.randn(1, 3, SIZE, SIZE, generator=g)
    videos = torch.randn(1, FRAMES, 3, SIZE, SIZE, generator=g)
    return {"input_ids": ids, "attention_mask": mask, "labels": labels, "images": images, "videos": videos}


def load_side(side: str, directory: Path, padded: bool = False):
    """The model with towers frozen, and a function running its forward on the batch (returns the loss)."""
    if side == "lvlm":
        from lvlm import VideoLLaVA

        model = VideoLLaVA.from_pretrained(directory)
        for tower in model.towers.values():
            tower.freeze()
        # As LVLMModule's training_step calls it, except that the loss runs over the whole vocabulary, placeholder
        # rows included, as transformers' does (lvlm's default leaves them out), so both sides compute one loss.
        options = {"loss_only": True, "drop_padding": not padded, "full_vocabulary_loss": True}
        return model, lambda b: model(**b, use_cache=False, **options).loss
    from transformers import VideoLlavaForConditionalGeneration

    model = VideoLlavaForConditionalGeneration.from_pretrained(directory, attn_implementation="sdpa")
    for name, param in model.named_parameters():
        param.requires_grad_("image_tower" not in name and "video_tower" not in name)

    def forward(b):
        return model(
            input_ids=b["input_ids"],
            attention_mask=b["attention_mask"],
            labels=b["labels"],
            pixel_values_images=b["images"],
            pixel_values_videos=b["videos"],
        ).loss

    return model, forward


def run_side(side: str, directory: Path, warmup: int, steps: int, threads: int, padded: bool) -> dict:
    import torch

    torch.set_num_threads(threads)
    model, forward = load_side(side, directory, padded)
    model.train()
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=1e-5)
    batch = make_batch()
    after_load = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    times, losses = [], []
    for i in range(warmup + steps):
        start = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        loss = forward(batch)
        loss.backward()
        optimizer.step()
        if i >= warmup:
            times.append(time.perf_counter() - start)
        losses.append(loss.item())
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {
        "side": side,
        "median_s": statistics.median(times),
        "min_s": min(times),
        "first_loss": losses[0],
        "trainable": sum(p.numel() for p in trainable),
        "after_load_mib": after_load / 1024,
        "peak_mib": peak / 1024,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=2, help="fresh processes per side, in alternating order (ABBA)")
    parser.add_argument("--padded", action="store_true", help="lvlm keeps the padding (drop_padding=False)")
    parser.add_argument("--json", type=Path, help="also write the figures and ratios to this file")
    parser.add_argument("--side", choices=("lvlm", "hf"), help=argparse.SUPPRESS)
    parser.add_argument("--checkpoint", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.side:
        result = run_side(args.side, Path(args.checkpoint), args.warmup, args.steps, args.threads, args.padded)
        print(json.dumps(result))
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        build_checkpoint(Path(tmp))
        runs: dict[str, list[dict]] = {"hf": [], "lvlm": []}
        order = [("hf", "lvlm") if r % 2 == 0 else ("lvlm", "hf") for r in range(args.rounds)]
        for side in (side for pair in order for side in pair):
            cmd = [
                sys.executable,
                __file__,
                "--side",
                side,
                "--checkpoint",
                tmp,
                "--steps",
                str(args.steps),
                "--warmup",
                str(args.warmup),
                "--threads",
                str(args.threads),
                *(["--padded"] if args.padded else []),
            ]
            out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
            runs[side].append(json.loads(out.strip().splitlines()[-1]))
    # Each side's best round (lowest median step time); memory figures come from that same process.
    results = {side: min(r, key=lambda x: x["median_s"]) for side, r in runs.items()}
    ratios = report(results, args)
    for side, r in runs.items():
        print(f"{side} median per round: " + ", ".join(f"{x['median_s']:.3f}s" for x in r))
    if args.json:
        settings = {k: getattr(args, k) for k in ("steps", "warmup", "threads", "rounds", "padded")}
        args.json.write_text(json.dumps({"settings": settings, "best": results, "rounds": runs, "ratios": ratios}))
    return 0


def report(results: dict, args) -> dict:
    """Print both sides and their ratios; returns the ratios (lvlm / transformers)."""
    lv, hf = results["lvlm"], results["hf"]
    print(
        f"train step on CPU ({args.threads} threads), batch: 1 image + 1 video of {FRAMES} frames, "
        f"{SIZE}px, {args.steps} timed steps after {args.warmup} warm-up steps"
    )
    print(
        f"{'':8}{'median s':>10}{'min s':>9}{'trainable':>12}{'RSS after load MiB':>20}{'peak RSS MiB':>14}"
        f"{'step adds MiB':>15}{'loss@1':>9}"
    )
    for r in (lv, hf):
        adds = r["peak_mib"] - r["after_load_mib"]
        print(
            f"{r['side']:8}{r['median_s']:>10.3f}{r['min_s']:>9.3f}{r['trainable']:>12,}{r['after_load_mib']:>20.0f}"
            f"{r['peak_mib']:>14.0f}{adds:>15.0f}{r['first_loss']:>9.4f}"
        )
    ratios = {
        "time": lv["median_s"] / hf["median_s"],
        "peak_rss": lv["peak_mib"] / hf["peak_mib"],
        "step_memory": (lv["peak_mib"] - lv["after_load_mib"]) / max(hf["peak_mib"] - hf["after_load_mib"], 1e-9),
    }
    print(
        f"lvlm/hf: time {ratios['time']:.3f}x, peak RSS {ratios['peak_rss']:.3f}x, "
        f"step memory {ratios['step_memory']:.3f}x"
    )
    return ratios


if __name__ == "__main__":
    sys.exit(main())
