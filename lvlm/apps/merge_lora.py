"""``lvlm merge-lora``: fold the LoRA adapters of a training run into the LLM, offline, in one process.

    lvlm merge-lora --checkpoint runs/finetune-lora/checkpoints/last.ckpt --out merged/
    lvlm merge-lora --checkpoint runs/lora/checkpoints/step=1000.ckpt --run-config runs/lora/config.yaml --out merged/

``--checkpoint`` is a Lightning ``.ckpt`` file or a sharded (FSDP2/DCP) checkpoint folder. The model is rebuilt
from the run's hyper-parameters (or ``--run-config``), the weights are loaded, peft merges ``W + (alpha/r) B A``
into every adapted linear layer and drops the adapters, and the result is written as a full lvlm checkpoint
directory with the tokenizer and chat template: ``VideoLLaVA.from_pretrained(out)`` and ``lvlm chat --model out``
read it. Merging needs no GPU and no process group (peft cannot merge inside FSDP, spec notes §5).

``--out`` may not be, contain or lie inside an input (the checkpoint, the config, or a file the run read);
an existing non-empty ``--out`` is refused unless ``--overwrite``, and is then replaced whole once the merged
model is complete (built in a temporary sibling and swapped in). The checkpoint's ``export.dir`` is ignored.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from lvlm.apps import command


@dataclass
class MergeLora:
    """Fold the LoRA adapters of a training run into the LLM, offline, in one process.

    Attributes:
        checkpoint: a Lightning .ckpt file or a DCP checkpoint folder.
        out: output lvlm checkpoint directory.
        run_config: the run's config.yaml, when the checkpoint has no hyper-parameters.
        dtype: cast the merged model (float32, bfloat16, float16).
        overwrite: replace an existing non-empty --out whole.
    """

    checkpoint: str
    out: str
    run_config: str | None = None
    dtype: str | None = None
    overwrite: bool = False

    def run(self) -> int:
        """Merge and write; returns 0, or 1 (and the reason) for a checkpoint that cannot be merged."""
        try:
            merge_checkpoint(self.checkpoint, self.out, self.run_config, self.dtype, self.overwrite)
        except (FileNotFoundError, ValueError, KeyError) as err:
            print(f"lvlm merge-lora: {err}")
            return 1
        return 0


def merge_checkpoint(checkpoint: str, out: str, run_config: str | None = None, dtype: str | None = None,
                     overwrite: bool = False) -> Any:  # fmt: skip
    """Merge a LoRA run's checkpoint into a full lvlm directory; returns the merged ``VideoLLaVA``."""
    from lvlm.training.run_checkpoint import export_run_checkpoint

    module, merged = export_run_checkpoint(checkpoint, out, "lvlm", run_config, dtype, overwrite, require_lora=True)
    print(f"lvlm merge-lora: merged {merged} LoRA layers (r={module.lora.r}, alpha={module.lora.alpha}) -> {out}")
    return module.model


def main(argv: list[str] | None = None) -> int:
    """Run ``lvlm merge-lora``; returns the exit status."""
    return command.run(MergeLora, argv, "lvlm merge-lora")
