"""Load on ``lvlm serve``: 1, 4 and 8 concurrent clients vs the same requests one by one.

A real server (``python -m lvlm serve`` in its own process, on 127.0.0.1) serves a small random model built here:
CLIP image tower and LanguageBind video tower at 224 px (patch 32: 49 tokens per image, 50 per video frame,
8 frames), a 4-layer Llama of width 256 and its own BPE tokenizer; no download. Its end-of-sequence logit is
held at 0 (below the best of the other logits) so every answer runs to its ``max_tokens``, drawn per request
between ``--min-tokens`` and ``--max-tokens`` (64-128 by default: a realistic chat answer). Clients use the
official ``openai`` client with greedy decoding and send base64 ``data:`` URLs of real PNG images and H.264 mp4
clips (320x240), so the server decodes the media as it would in use.

Two request sets: ``image`` (one image per request) and ``mix`` (images, videos, and an image with a video in
one message, in turn). Each set is sent by 1, 4 and 8 closed-loop clients; 1 client is the one-by-one baseline.
Reported per run: requests/s, output tokens/s, p50/p99 latency; ``speedup_at_8`` is requests/s at 8 clients over
requests/s at 1. Greedy answers must be identical at every concurrency (checked; exit status 1 otherwise). The
clients are made before each run's clock starts.

    python benchmarks/serve_load.py --json serve_load.json            # full settings (several minutes)
    python benchmarks/serve_load.py --requests 2 --concurrency 1 2 --min-tokens 4 --max-tokens 6 --small
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import os
import queue
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import av
import numpy as np
import openai
import torch
from PIL import Image, ImageDraw

from lvlm.data.tokenizer_training import train_tokenizer
from lvlm.models.language_model import LanguageModel
from lvlm.models.video_llava import VideoLLaVA
from lvlm.models.vision.clip_tower import CLIPVisionTower, LanguageBindVideoTower

WORDS = str.split(
    "the a an is are was on in of to with and or but what where which who how many colour color shape red green "
    "blue yellow white black circle square triangle moves left right up down describe this picture video clip "
    "there one two three small large object background person walks runs car dog cat table camera scene frame "
    "first then after before while slowly quickly bright dark light image shows appears near far side top bottom"
)
COLOURS = [(220, 40, 40), (40, 180, 60), (40, 70, 220), (230, 200, 40), (200, 60, 200), (40, 200, 200)]


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--json", type=Path, help="write the results here")
    p.add_argument("--requests", type=int, default=16, help="requests per set")
    p.add_argument("--concurrency", type=int, nargs="+", default=[1, 4, 8], help="client counts (the first is 1)")
    p.add_argument("--min-tokens", type=int, default=64)
    p.add_argument("--max-tokens", type=int, default=128)
    p.add_argument("--small", action="store_true", help="a much smaller model and media (for a quick test)")
    p.add_argument("--max-batch-size", type=int, default=8)
    p.add_argument("--threads", type=int, default=1, help="the server's torch threads (1: steady on a shared machine)")
    return p.parse_args()


def build_checkpoint(directory: Path, small: bool) -> None:
    """A random VideoLLaVA with its own tokenizer, saved in lvlm's layout."""
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    corpus = [" ".join(rng.choice(WORDS, 12)) + "?" for _ in range(400)] + ["USER: ASSISTANT: \n.,"] * 20
    tok = train_tokenizer(corpus, vocab_size=400)
    width, layers, vision, size, patch = (64, 1, 32, 64, 32) if small else (256, 4, 128, 224, 32)
    vision_config = dict(
        hidden_size=vision, intermediate_size=4 * vision, num_hidden_layers=2, num_attention_heads=4,
        image_size=size, patch_size=patch, projection_dim=64,
    )  # fmt: skip
    llm = LanguageModel(
        config=dict(
            model_type="llama",
            vocab_size=len(tok),
            hidden_size=width,
            intermediate_size=int(2.75 * width),
            num_hidden_layers=layers,
            num_attention_heads=4,
            num_key_value_heads=4,
            max_position_embeddings=1024,
            pad_token_id=tok.pad_token_id,
            bos_token_id=tok.bos_token_id,
            eos_token_id=tok.eos_token_id,
        )  # fmt: skip
    )
    towers = {
        "image": CLIPVisionTower(vision_config),
        "video": LanguageBindVideoTower(vision_config, num_frames=8),
    }
    model = VideoLLaVA.build(llm, towers, tokenizer=tok, chat_template="vicuna_v1").eval()
    with torch.no_grad():  # EOS logit 0, far below the largest of the others: answers run to their max_tokens
        model.llm.causal_lm.get_output_embeddings().weight[tok.eos_token_id] = 0
    model.save_pretrained(directory, tokenizer=tok)


def image_url(index: int, small: bool) -> str:
    size = (80, 60) if small else (320, 240)
    image = Image.new("RGB", size, COLOURS[(index + 3) % len(COLOURS)])
    draw = ImageDraw.Draw(image)
    x, y = (index * 37) % (size[0] // 2), (index * 23) % (size[1] // 2)
    draw.rectangle((x, y, x + size[0] // 3, y + size[1] // 3), fill=COLOURS[index % len(COLOURS)])
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def video_url(index: int, small: bool) -> str:
    width, height = (80, 60) if small else (320, 240)
    frames = 8 if small else 32
    buffer = io.BytesIO()
    with av.open(buffer, mode="w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=8)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for i in range(frames):
            image = np.full((height, width, 3), COLOURS[(index + 1) % len(COLOURS)], np.uint8)
            x = i * (width - 20) // (frames - 1)
            image[height // 3 : height // 3 + 20, x : x + 20] = COLOURS[index % len(COLOURS)]
            container.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
        container.mux(stream.encode(None))
    return "data:video/mp4;base64," + base64.b64encode(buffer.getvalue()).decode()


def request_sets(count: int, args: argparse.Namespace) -> dict[str, list[dict]]:
    """The fixed requests: ``image`` and ``mix`` (image, video, image+video in turn), with their max_tokens."""
    rng = np.random.default_rng(1)
    questions = [" ".join(rng.choice(WORDS, rng.integers(5, 12))) + "?" for _ in range(2 * count)]
    lengths = rng.integers(args.min_tokens, args.max_tokens + 1, 2 * count)

    def request(i: int, parts: list[dict]) -> dict:
        content = [{"type": "text", "text": questions[i]}, *parts]
        return {"messages": [{"role": "user", "content": content}], "max_tokens": int(lengths[i])}

    images = [request(i, [{"type": "image_url", "image_url": {"url": image_url(i, args.small)}}]) for i in range(count)]
    mix = []
    for i in range(count):
        image = {"type": "image_url", "image_url": {"url": image_url(100 + i, args.small)}}
        video = {"type": "video_url", "video_url": {"url": video_url(i, args.small)}}
        mix.append(request(count + i, [[image], [video], [video, image]][i % 3]))
    return {"image": images, "mix": mix}


def start_server(checkpoint: Path, args: argparse.Namespace) -> tuple[subprocess.Popen, str]:
    env = os.environ | {"HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    argv = [sys.executable, "-m", "lvlm", "serve", "--model", str(checkpoint), "--port", "0", "--served-model-name",
            "bench", "--max-batch-size", str(args.max_batch_size), "--threads", str(args.threads)]  # fmt: skip
    server = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True, env=env)
    line = server.stdout.readline()
    if "http://" not in line:
        server.kill()
        raise SystemExit(f"the server did not start: {line!r}")
    return server, line.split("at ", 1)[1].split()[0]


def run_clients(base_url: str, requests: list[dict], clients: int) -> dict:
    """Send ``requests`` from ``clients`` closed-loop clients; answers in request order, rates, latencies."""
    local = threading.local()
    answers: list[str | None] = [None] * len(requests)
    tokens, prompts, latencies = [0] * len(requests), [0] * len(requests), [0.0] * len(requests)
    # Made before the clock starts: each takes about 45 ms of the clients' interpreter (an SSL context), which
    # 8 clients would otherwise spend one after the other at the start of their run and 1 client only once.
    idle = queue.SimpleQueue()
    for _ in range(clients):
        idle.put(openai.OpenAI(base_url=base_url, api_key="none", timeout=600, max_retries=0))

    def send(index: int) -> None:
        if not hasattr(local, "client"):
            local.client = idle.get()
        start = time.perf_counter()
        reply = local.client.chat.completions.create(model="bench", temperature=0, **requests[index])
        latencies[index] = time.perf_counter() - start
        answers[index], tokens[index] = reply.choices[0].message.content, reply.usage.completion_tokens
        prompts[index] = reply.usage.prompt_tokens

    start = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(send, range(len(requests))))
    wall = time.perf_counter() - start
    ordered = sorted(latencies)
    return {
        "clients": clients,
        "requests": len(requests),
        "wall_s": round(wall, 3),
        "requests_per_s": round(len(requests) / wall, 3),
        "output_tokens_per_s": round(sum(tokens) / wall, 1),
        "output_tokens": sum(tokens),
        "mean_prompt_tokens": round(sum(prompts) / len(prompts)),
        "p50_latency_s": round(statistics.median(ordered), 3),
        "p99_latency_s": round(ordered[min(len(ordered) - 1, int(round(0.99 * (len(ordered) - 1))))], 3),
        "answers": answers,
    }


def main() -> int:
    args = parse_args()
    if args.concurrency[0] != 1:
        raise SystemExit("--concurrency must start with 1 (the one-by-one baseline)")
    with tempfile.TemporaryDirectory() as tmp:
        checkpoint = Path(tmp) / "bench-model"
        build_checkpoint(checkpoint, args.small)
        sets = request_sets(args.requests, args)
        server, base_url = start_server(checkpoint, args)
        try:
            run_clients(base_url, sets["image"][:1] + sets["mix"][1:3], 1)  # warm-up: first image, video, both
            results = {name: [run_clients(base_url, reqs, c) for c in args.concurrency] for name, reqs in sets.items()}
        finally:
            server.terminate()
            print(server.communicate(timeout=120)[0].strip())  # the server's batch sizes
    return report(results, args)


def report(results: dict[str, list[dict]], args: argparse.Namespace) -> int:
    identical = all(run["answers"] == runs[0]["answers"] for runs in results.values() for run in runs)
    speedups = {
        name: round(runs[-1]["requests_per_s"] / runs[0]["requests_per_s"], 2) for name, runs in results.items()
    }
    print(f"answers: {args.min_tokens}-{args.max_tokens} tokens per request (greedy); cores: {os.cpu_count()}, "
          f"server threads: {args.threads}")  # fmt: skip
    print(f"{'set':<6}{'clients':>8}{'req/s':>9}{'tok/s':>9}{'p50 s':>8}{'p99 s':>8}{'speedup':>9}")
    for name, runs in results.items():
        for run in runs:
            speedup = run["requests_per_s"] / runs[0]["requests_per_s"]
            print(f"{name:<6}{run['clients']:>8}{run['requests_per_s']:>9.2f}{run['output_tokens_per_s']:>9.1f}"
                  f"{run['p50_latency_s']:>8.2f}{run['p99_latency_s']:>8.2f}{speedup:>8.2f}x")  # fmt: skip
    print(f"same greedy answers at every concurrency: {'yes' if identical else 'NO'}")
    print(f"speedup at {args.concurrency[-1]} clients: " + ", ".join(f"{k} {v}x" for k, v in speedups.items()))
    if args.json:
        out = {
            f"speedup_at_{args.concurrency[-1]}": speedups,
            "identical_answers": identical,
            "answer_tokens": [args.min_tokens, args.max_tokens],
            "cpu_count": os.cpu_count(),
            "server_threads": args.threads,
            "results": {
                n: [{k: v for k, v in r.items() if k != "answers"} for r in runs] for n, runs in results.items()
            },
        }
        args.json.write_text(json.dumps(out, indent=2) + "\n")
    return 0 if identical else 1


if __name__ == "__main__":
    sys.exit(main())
