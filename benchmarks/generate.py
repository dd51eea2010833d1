"""Greedy generation speed: lvlm's generation engine vs transformers' ``VideoLlavaForConditionalGeneration.generate``.

Both run the SAME weights (an lvlm model saved with ``layout="hf"`` and loaded by transformers) on the same
prompts, in the same process, and must produce the same tokens. For image and video prompts at each batch size
it prints the time to first token (prefill, towers included) and the decode speed (new tokens after the first,
per second, summed over the batch), and their ratios. Nothing is asserted about time; ``--json`` writes the rows.

    python benchmarks/generate.py --json generate.json  # mid-size CPU config, about 2-3 minutes on one core
    python benchmarks/generate.py --llm-width 256 --new-tokens 8 --batch-sizes 1   # a quick look
    python benchmarks/generate.py --profile             # also print where the engine's time goes (torch.profiler)
    python benchmarks/generate.py --batch-sizes 1 --decoder compiled   # batch 1 through a compiled static decoder
    python benchmarks/generate.py --clock cpu          # thread CPU time instead of wall time (a shared machine)

``--decoder static`` / ``compiled`` answer batch-1 cases with :class:`~lvlm.models.generation.static_decoding.
StaticDecoder` (static cache; compiled decoding step); its first call, which compiles, is timed and shown apart.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import torch
from transformers import VideoLlavaForConditionalGeneration
from transformers.generation.streamers import BaseStreamer

from lvlm.models.generation.answer import Answer
from lvlm.models.generation.decoding_batch import DecodingBatch
from lvlm.models.generation.settings import GenerationSettings
from lvlm.models.generation.static_decoding import StaticDecoder
from lvlm.models.language_model import LanguageModel
from lvlm.models.video_llava import VideoLLaVA
from lvlm.models.vision.clip_tower import CLIPVisionTower, LanguageBindVideoTower

VOCAB, BOS, EOS = 1000, 1, 2


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--vision-width", type=int, default=256)
    p.add_argument("--vision-layers", type=int, default=4)
    p.add_argument("--image-size", type=int, default=224)
    p.add_argument("--patch", type=int, default=32)
    p.add_argument("--llm-width", type=int, default=768)
    p.add_argument("--llm-layers", type=int, default=6)
    p.add_argument("--frames", type=int, default=8)
    p.add_argument("--text-tokens", type=int, default=32, help="question tokens after the visual block")
    p.add_argument("--new-tokens", type=int, default=24)
    p.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 8])
    p.add_argument("--repeats", type=int, default=3, help="timed runs per case (the median is shown)")
    p.add_argument("--threads", type=int, default=1, help="torch threads (1: steady timings on a shared machine)")
    p.add_argument("--decoder", choices=["batch", "static", "compiled"], default="batch",
                   help="lvlm's batch-1 path: a DecodingBatch, or a StaticDecoder (compiled or not)")  # fmt: skip
    p.add_argument("--clock", choices=["wall", "cpu"], default="wall",
                   help="cpu: this thread's CPU time (with --threads 1), steadier on a shared machine")  # fmt: skip
    p.add_argument("--profile", action="store_true", help="profile lvlm on the video case at the last batch size")
    p.add_argument("--json", type=Path, help="write the results here")
    return p.parse_args()


def build_models(args: argparse.Namespace) -> tuple[VideoLLaVA, VideoLlavaForConditionalGeneration]:
    """A random lvlm model and the transformers model loaded from its ``layout="hf"`` save."""
    torch.manual_seed(0)
    vision = dict(
        hidden_size=args.vision_width, intermediate_size=4 * args.vision_width, num_hidden_layers=args.vision_layers,
        num_attention_heads=max(1, args.vision_width // 64), image_size=args.image_size, patch_size=args.patch,
    )  # fmt: skip
    heads = max(1, args.llm_width // 64)
    llm = LanguageModel(
        config=dict(
            model_type="llama",
            vocab_size=VOCAB,
            hidden_size=args.llm_width,
            intermediate_size=int(2.75 * args.llm_width),
            num_hidden_layers=args.llm_layers,
            num_attention_heads=heads,
            num_key_value_heads=heads,
            max_position_embeddings=4096,
            bos_token_id=BOS,
            eos_token_id=EOS,
            pad_token_id=0,
        )  # fmt: skip
    )
    towers = {
        "image": CLIPVisionTower(vision),
        # transformers' port runs a plain per-frame CLIP for videos: no temporal attention, CLS kept.
        "video": LanguageBindVideoTower(vision, num_frames=args.frames, temporal_attention=False),
    }
    model = VideoLLaVA.build(llm, towers).eval()
    with tempfile.TemporaryDirectory() as directory:
        model.save_pretrained(directory, layout="hf")
        hf = VideoLlavaForConditionalGeneration.from_pretrained(directory).eval()
    return model, hf


def prompts(model: VideoLLaVA, kind: str, batch: int, args: argparse.Namespace) -> dict[str, torch.Tensor]:
    """``batch`` different prompts of one length (no padding): BOS, the visual block, question tokens."""
    gen = torch.Generator().manual_seed(batch)
    tower = model.towers[kind]
    count = tower.tokens_per_image if kind == "image" else tower.tokens_per_frame * args.frames
    text = torch.randint(10, VOCAB - 10, (batch, args.text_tokens), generator=gen)
    visual = torch.full((batch, count), model.modalities[kind].token_id)
    ids = torch.cat([torch.full((batch, 1), BOS), visual, text], dim=1)
    size = args.image_size
    shape = (batch, 3, size, size) if kind == "image" else (batch, args.frames, 3, size, size)
    return {"input_ids": ids, "attention_mask": torch.ones_like(ids), kind + "s": torch.randn(shape, generator=gen)}


# wall time, or this thread's CPU time (with one torch thread every kernel runs on it; other jobs on a shared
# machine barely move it)
CLOCKS = {"wall": time.perf_counter, "cpu": time.thread_time}


class Clock(BaseStreamer):
    """Timestamps of ``generate``'s streamer calls: the first ``put`` is the prompt, then one per new token."""

    def __init__(self, now=time.perf_counter) -> None:
        self.now = now
        self.times: list[float] = []

    def put(self, value: torch.Tensor) -> None:
        self.times.append(self.now())

    def end(self) -> None:
        self.times.append(self.now())


class Ids:
    """The benchmark's tokenizer: no text, no end-of-sequence (both sides generate exactly ``new_tokens``)."""

    eos_token_id = None

    def decode(self, ids: list[int], skip_special_tokens: bool = True) -> str:
        return " ".join(map(str, ids))


def run_lvlm(
    model: VideoLLaVA, inputs: dict, new_tokens: int, clock: Clock | None = None, decoder: StaticDecoder | None = None
) -> torch.Tensor:
    """The engine: one prefill, then steps until every row has ``new_tokens``; ``clock`` gets the prompt's, the
    first token's and the end's time. A batch of one goes through ``decoder`` when given."""
    clock = clock or Clock()
    clock.put(inputs["input_ids"])
    media = {k: v for k, v in inputs.items() if k not in ("input_ids", "attention_mask")}
    if decoder is not None and len(inputs["input_ids"]) == 1:
        answer = Answer(GenerationSettings(new_tokens), on_text=lambda text: clock.put(None))
        decoder.answer(inputs["input_ids"], inputs["attention_mask"], media, answer)
        clock.end()
        return torch.tensor([answer.ids])
    batch = DecodingBatch(model, Ids(), 10**9, max_rows=len(inputs["input_ids"]))
    answers = [Answer(GenerationSettings(new_tokens)) for _ in inputs["input_ids"]]
    batch.join(batch.prefill(inputs["input_ids"], inputs["attention_mask"], media), answers)
    clock.put(inputs["input_ids"])
    while len(batch):
        batch.step()
    clock.end()
    return torch.tensor([answer.ids for answer in answers])


def run_hf(hf: VideoLlavaForConditionalGeneration, inputs: dict, new_tokens: int, streamer: Clock | None = None):
    media = {"pixel_values_images": inputs.get("images"), "pixel_values_videos": inputs.get("videos")}
    out = hf.generate(
        input_ids=inputs["input_ids"],
        attention_mask=inputs["attention_mask"],
        **{k: v for k, v in media.items() if v is not None},
        max_new_tokens=new_tokens,
        min_new_tokens=new_tokens,
        do_sample=False,
        streamer=streamer,
    )
    return out[:, inputs["input_ids"].shape[1] :]


def measure(fns: dict, inputs: dict, args: argparse.Namespace) -> dict[str, tuple[dict[str, float], torch.Tensor]]:
    """Per implementation, the median over ``repeats`` runs of the time to the first new token and of the decode
    rate after it. Runs alternate between implementations so load drift on a shared machine hits both alike."""
    batch = inputs["input_ids"].shape[0]
    firsts: dict[str, list[float]] = {name: [] for name in fns}
    rates: dict[str, list[float]] = {name: [] for name in fns}
    tokens: dict[str, torch.Tensor] = {}
    for _ in range(args.repeats):
        for name, fn in fns.items():
            clock = Clock(CLOCKS[args.clock])
            start = clock.now()
            with torch.inference_mode():
                tokens[name] = fn(inputs, args.new_tokens, clock)
            first, last = clock.times[1], clock.times[-1]  # [0] is the prompt, [1] the first token
            firsts[name].append(first - start)
            rates[name].append(batch * (args.new_tokens - 1) / (last - first))
    return {
        name: (
            {"ttft_s": statistics.median(firsts[name]), "decode_tok_s": statistics.median(rates[name])},
            tokens[name],
        )
        for name in fns
    }


def profile_lvlm(model: VideoLLaVA, inputs: dict, args: argparse.Namespace) -> None:
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof, torch.inference_mode():
        run_lvlm(model, inputs, args.new_tokens)
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=15))


def main() -> None:
    args = parse_args()
    torch.set_num_threads(args.threads)
    model, hf = build_models(args)
    print(
        f"vision d={args.vision_width} x{args.vision_layers} {args.image_size}px/patch {args.patch} | llama "
        f"d={args.llm_width} x{args.llm_layers} | {args.frames} frames | {args.text_tokens} text + {args.new_tokens} "
        f"new tokens | {args.threads} threads | torch {torch.__version__}"
    )
    decoder = None
    if args.decoder != "batch":
        decoder = StaticDecoder(model, Ids(), 10**9, compile=args.decoder == "compiled")
    with torch.inference_mode():  # warm-up (allocator, kernels; the decoder's first call per bucket compiles)
        run_lvlm(model, prompts(model, "image", 1, args), 2)
        run_hf(hf, prompts(model, "image", 1, args), 2)
        for kind in ("image", "video") if decoder is not None else ():
            start = time.perf_counter()
            run_lvlm(model, prompts(model, kind, 1, args), args.new_tokens, decoder=decoder)
            print(f"{args.decoder} decoder, first {kind} call (warm-up): {time.perf_counter() - start:.1f} s")
    rows = []
    header = f"{'case':<10}{'batch':>6}{'prompt':>8} | {'lvlm ttft s':>12}{'hf ttft s':>11}{'ratio':>7} | "
    print(header + f"{'lvlm dec tok/s':>15}{'hf dec tok/s':>14}{'ratio':>7}")
    for kind in ("image", "video"):
        for batch in args.batch_sizes:
            inputs = prompts(model, kind, batch, args)
            fns = {"lvlm": lambda x, n, c: run_lvlm(model, x, n, c, decoder), "hf": lambda x, n, c: run_hf(hf, x, n, c)}
            results = measure(fns, inputs, args)
            (ours, our_tokens), (theirs, their_tokens) = results["lvlm"], results["hf"]
            assert torch.equal(our_tokens, their_tokens), f"{kind} batch {batch}: lvlm and transformers tokens differ"
            ttft = f"{ours['ttft_s']:>12.3f}{theirs['ttft_s']:>11.3f}{ours['ttft_s'] / theirs['ttft_s']:>7.2f}"
            speed = ours["decode_tok_s"], theirs["decode_tok_s"]
            decode = f"{speed[0]:>15.1f}{speed[1]:>14.1f}{speed[0] / speed[1]:>7.2f}"
            print(f"{kind:<10}{batch:>6}{inputs['input_ids'].shape[1]:>8} | {ttft} | {decode}")
            rows.append({"case": kind, "batch": batch, "prompt": inputs["input_ids"].shape[1], "lvlm": ours,
                         "transformers": theirs, "ttft_ratio": ours["ttft_s"] / theirs["ttft_s"],
                         "decode_ratio": speed[0] / speed[1]})  # fmt: skip
    print("ratio = lvlm / transformers (ttft: lower is better; decode tok/s: higher is better); same tokens: yes")
    if args.json:
        args.json.write_text(json.dumps({"args": vars(args) | {"json": str(args.json)}, "rows": rows}, indent=1))
    if args.profile:
        profile_lvlm(model, prompts(model, "video", args.batch_sizes[-1], args), args)


if __name__ == "__main__":
    main()
