"""Memory of loading a checkpoint: lvlm's ``VideoLLaVA.from_pretrained`` vs transformers' VideoLlava.

Both read the same random ``video_llava`` checkpoint (float32 safetensors, written once), each load in a fresh
process, as stored (``float32``) and cast on load (``bfloat16``). For each load it prints:

- ``weights``: the size of the loaded model's state dict;
- ``anon``: the process's own (anonymous) memory added by loading, read from ``/proc/self/status`` after it;
- ``peak``: the rise of the resident high-water mark (``VmHWM``) during loading. It also counts the checkpoint
  file's pages while they are mapped and read: page cache the kernel can reclaim, not allocated memory.

    python benchmarks/load_memory.py              # ~870 MB of float32 weights (Llama d=1024, 12 layers)

Prints figures and ratios; asserts nothing. Linux only (``/proc``).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path


def build_checkpoint(directory: Path, layers: int) -> None:
    import torch
    from transformers import CLIPVisionConfig, LlamaConfig, VideoLlavaConfig, VideoLlavaForConditionalGeneration

    torch.manual_seed(0)
    vision = CLIPVisionConfig(
        hidden_size=256, intermediate_size=1024, num_hidden_layers=4, num_attention_heads=4, image_size=112,
        patch_size=14, projection_dim=256,
    )  # fmt: skip
    text = LlamaConfig(
        vocab_size=32064, hidden_size=1024, intermediate_size=2816, num_hidden_layers=layers, num_attention_heads=8,
        num_key_value_heads=8, max_position_embeddings=2048, pad_token_id=0,
    )  # fmt: skip
    config = VideoLlavaConfig(
        vision_config=vision, text_config=text, image_token_index=32000, video_token_index=32001,
        image_seq_length=64, video_seq_length=65 * 8,
    )  # fmt: skip
    VideoLlavaForConditionalGeneration(config).save_pretrained(directory)


def memory_mib() -> dict[str, int]:
    fields = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines())
    return {k: int(fields[k].split()[0]) // 1024 for k in ("VmHWM", "RssAnon")}


def load_once(side: str, directory: Path, dtype: str) -> dict:
    """Runs in a fresh process: imports first, then measures the load alone."""
    import torch
    from transformers import VideoLlavaForConditionalGeneration

    from lvlm import VideoLLaVA

    torch_dtype = getattr(torch, dtype)
    before = memory_mib()
    if side == "lvlm":
        model = VideoLLaVA.from_pretrained(directory, dtype=torch_dtype)
    else:
        model = VideoLlavaForConditionalGeneration.from_pretrained(directory, dtype=torch_dtype)
    after = memory_mib()
    weights = sum(t.numel() * t.element_size() for t in model.state_dict().values()) // 2**20
    return {
        "side": side,
        "dtype": dtype,
        "weights": weights,
        "anon": after["RssAnon"] - before["RssAnon"],
        "peak": after["VmHWM"] - before["VmHWM"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--layers", type=int, default=12, help="Llama layers (d=1024; 12 -> ~870 MB of float32)")
    parser.add_argument("--child", nargs=3, metavar=("SIDE", "DIR", "DTYPE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        side, directory, dtype = args.child
        print(json.dumps(load_once(side, Path(directory), dtype)))
        return
    with tempfile.TemporaryDirectory(prefix="lvlm-load-") as tmp:
        build_checkpoint(Path(tmp), args.layers)
        rows = []
        for dtype in ("float32", "bfloat16"):
            for side in ("hf", "lvlm"):
                out = subprocess.run(
                    [sys.executable, __file__, "--child", side, tmp, dtype], check=True, capture_output=True, text=True
                ).stdout
                rows.append(json.loads(out.strip().splitlines()[-1]))
    print(f"{'side':6}{'dtype':>10}{'weights MiB':>13}{'anon MiB':>10}{'peak MiB':>10}")
    for r in rows:
        print(f"{r['side']:6}{r['dtype']:>10}{r['weights']:>13}{r['anon']:>10}{r['peak']:>10}")
    for dtype in ("float32", "bfloat16"):
        hf, lv = (next(r for r in rows if r["side"] == s and r["dtype"] == dtype) for s in ("hf", "lvlm"))
        anon, peak, own = lv["anon"] / max(hf["anon"], 1), lv["peak"] / max(hf["peak"], 1), lv["anon"] / lv["weights"]
        print(f"{dtype}: lvlm/hf anon {anon:.2f}x, peak {peak:.2f}x; lvlm anon / weights {own:.2f}x")


if __name__ == "__main__":
    main()
