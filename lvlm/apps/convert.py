"""``lvlm convert``: between lvlm's and transformers' layouts, and from a training run's checkpoint.

    lvlm convert --model DIR --to hf --out DIR_HF          # lvlm (or original) layout -> transformers video_llava
    lvlm convert --model DIR_HF --to lvlm --out DIR        # transformers video_llava -> lvlm
    lvlm convert --checkpoint last.ckpt --out DIR          # a Lightning .ckpt -> lvlm checkpoint directory
    lvlm convert --checkpoint step=1000/ --config runs/x/config.yaml --out DIR   # sharded FSDP2 (DCP) folder
    lvlm convert --model DIR --to hf --out DIR_HF --overwrite   # replace an existing DIR_HF whole

``--model`` takes any layout ``VideoLLaVA.from_pretrained`` reads; the tokenizer is copied when the directory has
one. ``--checkpoint`` rebuilds the run's model from its hyper-parameters (or the ``config.yaml`` LightningCLI
saved next to the run) and loads the weights; LoRA adapters, if any, are merged. Writing ``--to hf`` warns
where transformers' layout cannot hold something (e.g. the video tower's temporal attention).

``--out`` may not be, contain or lie inside an input (the model, the checkpoint, the config, or a file the
run read such as its tokenizer); an existing non-empty ``--out`` is refused unless ``--overwrite``. The result
is built in a temporary sibling of ``--out`` and swapped in when complete, so no file of an older output
survives beside the new ones. Paths recorded in a checkpoint (``export.dir``...) never choose where it writes.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from lvlm.core.outputs import check_output, paths_named_in, staged_output


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lvlm convert", description="Convert checkpoints between lvlm and hf layouts, or from a training run."
    )
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--model", help="a checkpoint directory (lvlm, hf or original layout)")
    source.add_argument("--checkpoint", help="a Lightning .ckpt file or a sharded DCP checkpoint folder")
    parser.add_argument("--out", required=True, help="output directory")
    parser.add_argument("--to", choices=("lvlm", "hf"), default="lvlm", help="layout to write (default: lvlm)")
    parser.add_argument("--config", default=None, help="with --checkpoint: the run's config.yaml (if no hparams)")
    parser.add_argument("--dtype", default=None, help="cast before writing (float32, bfloat16, float16)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing non-empty --out whole")
    return parser


def _tokenizer(directory: Path):
    from lvlm.models.io.tokenizer import load_tokenizer

    if not any((directory / name).is_file() for name in ("tokenizer.json", "tokenizer_config.json", "tokenizer.model")):
        return None
    return load_tokenizer(directory)


def _paths_named_by_configs(directory: Path) -> list[str]:
    """Files and folders a model directory's configs name (e.g. the original layout's tower folders)."""
    named = []
    for name in ("config.json", "lvlm_config.json"):
        try:
            named += paths_named_in(json.loads((directory / name).read_text()))
        except (OSError, ValueError):
            continue
    return named


def convert_model_dir(
    model_dir: str | Path, out: str | Path, to: str = "lvlm", dtype: str | None = None, overwrite: bool = False
) -> Path:
    """Re-write a model directory in another layout (tokenizer copied when present)."""
    from lvlm.models.video_llava import VideoLLaVA

    model_dir = Path(model_dir)
    out = check_output(out, [model_dir, *_paths_named_by_configs(model_dir)], overwrite, "--out")
    model = VideoLLaVA.from_pretrained(model_dir, dtype=dtype)
    tokenizer = _tokenizer(model_dir)
    with staged_output(out) as staged:
        model.save_pretrained(staged, layout=to, tokenizer=tokenizer)
    return out


def convert_run_checkpoint(
    checkpoint: str | Path,
    out: str | Path,
    to: str = "lvlm",
    config: str | Path | None = None,
    dtype: str | None = None,
    overwrite: bool = False,
) -> Path:
    """A training run's ``.ckpt`` or DCP folder → a checkpoint directory (LoRA merged) with the run's tokenizer."""
    from lvlm.apps.run_checkpoint import merge_lora_into, paths_read_by, read_run_checkpoint, rebuild_module
    from lvlm.models.language_model import _dtype

    out = check_output(out, [checkpoint, config], overwrite, "--out")
    module = rebuild_module(read_run_checkpoint(checkpoint), config, source=str(checkpoint))
    check_output(out, paths_read_by(dict(module.hparams)), overwrite, "--out")
    model = module.model.eval()
    if module.lora is not None:
        merged = merge_lora_into(model.llm.causal_lm)
        print(f"lvlm convert: merged {merged} LoRA layers into the LLM")
    if dtype is not None:
        model = model.to(_dtype(dtype))
    with staged_output(out) as staged:
        model.save_pretrained(staged, layout=to, tokenizer=module.tokenizer)
    return out


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.model is not None:
            out = convert_model_dir(args.model, args.out, args.to, args.dtype, args.overwrite)
        else:
            out = convert_run_checkpoint(args.checkpoint, args.out, args.to, args.config, args.dtype, args.overwrite)
    except (FileNotFoundError, ValueError, KeyError) as err:
        print(f"lvlm convert: {err}")
        return 1
    print(f"lvlm convert: wrote the {args.to} layout to {out}")
    return 0
