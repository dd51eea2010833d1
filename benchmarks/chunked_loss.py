"""The supervised-token loss alone: lvlm's chunked cross-entropy vs one ``F.cross_entropy`` over float32 logits.

The baseline is what ``loss_at_positions`` did before (and what transformers' ``ForCausalLMLoss`` does): upcast
all the logits to float32, mask the placeholder rows, one ``cross_entropy``. lvlm's
(:mod:`lvlm.models.chunked_loss`) takes chunks of rows and computes the gradient in forward. Each side runs
forward + backward on the same random ``[rows, vocab]`` logits in its own fresh process, ``--repeats`` times after
one warm-up; memory is the process's RSS high-water mark (``ru_maxrss``), so ``peak - after setup`` is what the
loss adds. Sides alternate over ``--rounds`` (ABBA); the best round per side is reported.

    python benchmarks/chunked_loss.py --json chunked_loss.json
    python benchmarks/chunked_loss.py --dtype bfloat16

It prints figures and ratios (``--json`` writes them too) and asserts nothing about time.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path


def run_side(side: str, rows: int, vocab: int, dtype: str, repeats: int) -> dict:
    import torch
    import torch.nn.functional as F

    from lvlm.models.chunked_loss import chunked_cross_entropy

    torch.set_num_threads(1)
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(rows, vocab, generator=g).to(getattr(torch, dtype)).requires_grad_()
    targets = torch.randint(0, vocab - 2, (rows,), generator=g)
    targets[::7] = -100
    excluded = [vocab - 2, vocab - 1]  # two placeholder rows, as in a Video-LLaVA vocabulary

    def loss() -> torch.Tensor:
        if side == "lvlm":
            return chunked_cross_entropy(logits, targets, excluded)
        scores = logits.float()
        scores = (scores.clone() if scores is logits else scores).index_fill_(-1, torch.tensor(excluded), -torch.inf)
        return F.cross_entropy(scores, targets, ignore_index=-100)

    after_setup = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    times = []
    for i in range(repeats + 1):
        start = time.perf_counter()
        value = loss()
        value.backward()
        logits.grad = None
        if i:
            times.append(time.perf_counter() - start)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {
        "side": side,
        "median_s": statistics.median(times),
        "loss": value.item(),
        "adds_mib": (peak - after_setup) / 1024,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=2048)
    parser.add_argument("--vocab", type=int, default=32000)
    parser.add_argument("--dtype", choices=("float32", "bfloat16"), default="float32")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--side", choices=("lvlm", "baseline"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.side:
        print(json.dumps(run_side(args.side, args.rows, args.vocab, args.dtype, args.repeats)))
        return 0
    runs: dict[str, list[dict]] = {"baseline": [], "lvlm": []}
    sizes = [
        "--rows",
        str(args.rows),
        "--vocab",
        str(args.vocab),
        "--dtype",
        args.dtype,
        "--repeats",
        str(args.repeats),
    ]
    for r in range(args.rounds):
        for side in ("baseline", "lvlm") if r % 2 == 0 else ("lvlm", "baseline"):
            out = subprocess.run(
                [sys.executable, __file__, "--side", side, *sizes], check=True, capture_output=True, text=True
            )
            runs[side].append(json.loads(out.stdout.strip().splitlines()[-1]))
    best = {side: min(r, key=lambda x: x["median_s"]) for side, r in runs.items()}
    lv, base = best["lvlm"], best["baseline"]
    ratios = {"time": lv["median_s"] / base["median_s"], "added_memory": lv["adds_mib"] / max(base["adds_mib"], 1e-9)}
    print(f"loss over {args.rows} rows x {args.vocab} vocabulary, {args.dtype}, forward + backward, 1 thread")
    for r in (lv, base):
        print(f"{r['side']:9} median {r['median_s']:.3f} s  adds {r['adds_mib']:.0f} MiB  loss {r['loss']:.6f}")
    print(f"lvlm/baseline: time {ratios['time']:.3f}x, added memory {ratios['added_memory']:.3f}x")
    if args.json:
        args.json.write_text(
            json.dumps({"settings": vars(args) | {"json": str(args.json)}, "rounds": runs, "ratios": ratios})
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
