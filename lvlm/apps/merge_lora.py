"""``lvlm merge-lora``: fold the LoRA adapters of a training run into the LLM, offline, in one process.

    lvlm merge-lora --checkpoint runs/finetune-lora/checkpoints/last.ckpt --out merged/
    lvlm merge-lora --checkpoint runs/lora/checkpoints/step=1000.ckpt --config runs/lora/config.yaml --out merged/

``--checkpoint`` is a Lightning ``.ckpt`` file or a sharded (FSDP2/DCP) checkpoint folder. The model is rebuilt
from the run's hyper-parameters (or ``--config``), the weights are loaded, peft merges ``W + (alpha/r) B A``
into every adapted linear layer and drops the adapters, and the result is written as a full lvlm checkpoint
directory with the tokenizer and chat template: ``VideoLLaVA.from_pretrained(out)`` and ``lvlm chat --model out``
read it. Merging needs no GPU and no process group (peft cannot merge inside FSDP, spec notes §5).

``--out`` may not be, contain or lie inside an input (the checkpoint, the config, or a file the run read);
an existing non-empty ``--out`` is refused unless ``--overwrite``, and is then replaced whole once the merged
model is complete (built in a temporary sibling and swapped in). The checkpoint's ``export.dir`` is ignored.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from lvlm.core.outputs import check_output, staged_output


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lvlm merge-lora", description=__doc__.split("\n\n")[0].split(": ", 1)[1])
    parser.add_argument("--checkpoint", required=True, help="a Lightning .ckpt file or a DCP checkpoint folder")
    parser.add_argument("--out", required=True, help="output lvlm checkpoint directory")
    parser.add_argument("--config", default=None, help="the run's config.yaml, when the checkpoint has no hparams")
    parser.add_argument("--dtype", default=None, help="cast the merged model (float32, bfloat16, float16)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing non-empty --out whole")
    return parser


def merge_checkpoint(
    checkpoint: str | Path,
    out: str | Path,
    config: str | Path | None = None,
    dtype: str | None = None,
    overwrite: bool = False,
):
    """Merge a LoRA run's checkpoint into a full lvlm directory; returns the merged ``VideoLLaVA``."""
    from lvlm.apps.run_checkpoint import merge_lora_into, paths_read_by, read_run_checkpoint, rebuild_module
    from lvlm.models.language_model import _dtype

    out = check_output(out, [checkpoint, config], overwrite, "--out")
    module = rebuild_module(read_run_checkpoint(checkpoint), config, source=str(checkpoint))
    check_output(out, paths_read_by(dict(module.hparams)), overwrite, "--out")
    if module.lora is None:
        raise ValueError(
            f"{checkpoint}: this run trained no LoRA adapters (model.optimisation.lora is null); "
            f"use `lvlm convert --checkpoint {checkpoint} --out DIR` to export it as it is"
        )
    model = module.model.eval()
    merged = merge_lora_into(model.llm.causal_lm)
    if merged == 0:
        raise ValueError(f"{checkpoint}: model.optimisation.lora is set but no LoRA layer was found in the LLM")
    if dtype is not None:
        model = model.to(_dtype(dtype))
    with staged_output(out) as staged:
        model.save_pretrained(staged, tokenizer=module.tokenizer)
    print(f"lvlm merge-lora: merged {merged} LoRA layers (r={module.lora.r}, alpha={module.lora.alpha}) -> {out}")
    return model


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        merge_checkpoint(args.checkpoint, args.out, args.config, args.dtype, args.overwrite)
    except (FileNotFoundError, ValueError, KeyError) as err:
        print(f"lvlm merge-lora: {err}")
        return 1
    return 0
