"""``lvlm convert``: between lvlm's and transformers' layouts, and from a training run's checkpoint.

    lvlm convert --model DIR --to hf --out DIR_HF          # lvlm (or original) layout -> transformers video_llava
    lvlm convert --model DIR_HF --to lvlm --out DIR        # transformers video_llava -> lvlm
    lvlm convert --checkpoint last.ckpt --out DIR          # a Lightning .ckpt -> lvlm checkpoint directory
    lvlm convert --checkpoint step=1000/ --run-config runs/x/config.yaml --out DIR   # sharded FSDP2 (DCP) folder
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

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from lvlm.apps import command
from lvlm.core.errors import UserError
from lvlm.core.outputs import check_output, paths_named_in, staged_output


@dataclass
class Convert:
    """Convert checkpoints between lvlm and hf layouts, or from a training run.

    Attributes:
        out: output directory.
        model: a checkpoint directory (lvlm, hf or original layout); or give --checkpoint.
        checkpoint: a Lightning .ckpt file or a sharded DCP checkpoint folder; or give --model.
        to: layout to write (default: lvlm).
        run_config: with --checkpoint: the run's config.yaml (if the checkpoint has no hyper-parameters).
        dtype: cast before writing (float32, bfloat16, float16).
        overwrite: replace an existing non-empty --out whole.
    """

    out: str
    model: str | None = None
    checkpoint: str | None = None
    to: Literal["lvlm", "hf"] = "lvlm"
    run_config: str | None = None
    dtype: str | None = None
    overwrite: bool = False

    def run(self) -> int:
        """Convert; returns 0, or 1 (and the reason) for an input that cannot be read."""
        if (self.model is None) == (self.checkpoint is None):
            raise UserError("give one of --model and --checkpoint")
        try:
            if self.model is not None:
                out = convert_model_dir(self.model, self.out, self.to, self.dtype, self.overwrite)
            else:
                out = convert_run_checkpoint(self.checkpoint, self.out, self.to, self.run_config, self.dtype,
                                             self.overwrite)  # fmt: skip
        except (FileNotFoundError, ValueError, KeyError) as err:
            print(f"lvlm convert: {err}")
            return 1
        print(f"lvlm convert: wrote the {self.to} layout to {out}")
        return 0


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
    run_config: str | Path | None = None,
    dtype: str | None = None,
    overwrite: bool = False,
) -> Path:
    """A training run's ``.ckpt`` or DCP folder → a checkpoint directory (LoRA merged) with the run's tokenizer."""
    from lvlm.training.run_checkpoint import export_run_checkpoint

    _, merged = export_run_checkpoint(checkpoint, out, to, run_config, dtype, overwrite)
    if merged:
        print(f"lvlm convert: merged {merged} LoRA layers into the LLM")
    return Path(out)


def main(argv: list[str] | None = None) -> int:
    """Run ``lvlm convert``; returns the exit status."""
    return command.run(Convert, argv, "lvlm convert")
