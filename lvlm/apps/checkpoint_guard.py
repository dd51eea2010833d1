"""Every checkpoint Lightning loads is checked, whatever named it: ``--ckpt_path PATH``, ``last``, ``hpc`` or a
SLURM requeue that gives no path at all.

Lightning resolves the special values (``last``, ``hpc``, ``best``, the requeue's highest ``hpc_ckpt_<n>.ckpt``)
inside ``Trainer.fit``, after any check of the literal argument could run; all of them end in one call,
``trainer.strategy.load_checkpoint(path, weights_only=...)``. :func:`guard_checkpoint_loading` puts the checks in
front of that call, on the path Lightning actually loads:

- a sharded (DCP) folder's ``.metadata`` goes through lvlm's restricted unpickler first (torch reads it with plain
  pickle); a single file is read with ``weights_only=True`` whatever the caller asked, and a refusal is an
  :class:`~lvlm.core.errors.UnsafeInputError` (``lvlm`` exits 2 naming the file, no traceback);
- an export of the run (``model.export.dir``/``projector``) that is, holds or lies inside the checkpoint is
  refused (the checkpoint is an input);
- the settings the checkpoint records are compared with the recipe's and the differences printed (the recipe wins).
"""

from __future__ import annotations

import pickle
import sys
from pathlib import Path
from typing import Any

from lightning.pytorch import LightningModule, Trainer

from lvlm.apps.resume_report import report
from lvlm.core.errors import UnsafeInputError
from lvlm.core.outputs import check_output
from lvlm.models.checkpoints.dcp import check_dcp, is_dcp_folder
from lvlm.training.export import EXPORT_GROUP, EXPORT_SETTINGS


def check_run_checkpoint(
    path: str | Path, module: LightningModule | None, subcommand: str, report_settings: bool = True
) -> None:
    """The checks of a checkpoint about to be loaded (see the module docstring); with ``report_settings`` the
    settings that differ from the recipe's are printed too."""
    if is_dcp_folder(path):
        check_dcp(path)
    settings = dict(getattr(module, "hparams", {}) or {}) if subcommand == "fit" else {}
    exports = settings.get(EXPORT_GROUP) or {}
    for key in EXPORT_SETTINGS:
        if exports.get(key) is not None:
            check_output(exports[key], [path], overwrite=True, what=f"model.export.{key}")
    if report_settings and subcommand == "fit" and module is not None and module.global_rank == 0:
        print(report(path, settings), file=sys.stderr)


def check_named_checkpoint(ckpt_path: Any, module: LightningModule | None, subcommand: str) -> None:
    """Before the trainer starts (no run folder, no config written yet): the checks of an explicit ``--ckpt_path``
    that names an existing file or folder. Special values (``last``, ``hpc``) are resolved by Lightning later and
    checked then, by :func:`guard_checkpoint_loading`."""
    if ckpt_path and Path(str(ckpt_path)).exists():
        check_run_checkpoint(ckpt_path, module, subcommand, report_settings=False)


def guard_checkpoint_loading(trainer: Trainer, subcommand: str) -> None:
    """Wrap ``trainer.strategy.load_checkpoint`` so that every path it is given passes
    :func:`check_run_checkpoint` and is read with ``weights_only=True``. Idempotent."""
    strategy = trainer.strategy
    if getattr(strategy.load_checkpoint, "lvlm_guarded", False):
        return
    load = strategy.load_checkpoint

    def guarded_load_checkpoint(checkpoint_path: Any, weights_only: bool | None = None) -> Any:
        check_run_checkpoint(checkpoint_path, trainer.lightning_module, subcommand)
        try:
            return load(checkpoint_path, weights_only=True)
        except pickle.UnpicklingError as err:  # weights_only refused a class or function: the file wanted code run
            reason = str(err).splitlines()[-1] if str(err) else "unpickling refused"
            raise UnsafeInputError(
                f"{checkpoint_path}: refused to load it: it holds more than tensors and plain data, and loading it "
                f"would run code ({reason})"
            ) from err

    guarded_load_checkpoint.lvlm_guarded = True  # type: ignore[attr-defined]
    strategy.load_checkpoint = guarded_load_checkpoint  # type: ignore[method-assign]
