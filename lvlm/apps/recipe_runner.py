"""The recipe runner: ``lvlm fit|validate|test|predict`` through LightningCLI (omegaconf mode), used by those
commands, ``lvlm run`` (:mod:`lvlm.apps.fit`), the quickstart and the ablation grid.

The model and the data agree through two links applied when the classes are instantiated: the data
module receives the module's tokenizer object (placeholder tokens already added) as ``data.tokenizer``
and its modalities (placeholders, members, decoding, transforms, token counts) as ``data.modalities``.
"""

from __future__ import annotations

import warnings
from typing import Any

from lightning.pytorch import LightningDataModule
from lightning.pytorch.callbacks import ProgressBar
from lightning.pytorch.cli import LightningCLI

from lvlm.apps.checkpoint_guard import check_named_checkpoint, guard_checkpoint_loading
from lvlm.apps.fit_args import read_yaml_or_none, rewrite_args
from lvlm.apps.quiet import quiet_training_output
from lvlm.apps.recipe_errors import recipe_errors
from lvlm.training.module import LVLMModule
from lvlm.training.progress import StepProgressBar

CONFIG_FLAGS = ("-c", "--config")


def _tokenizer_of(module: LVLMModule) -> Any:
    return module.tokenizer


def _modalities_of(module: LVLMModule) -> dict[str, Any]:
    return module.modalities


def _template_of(module: LVLMModule) -> Any:
    return module.chat_template


class LVLMCLI(LightningCLI):
    """LightningCLI for :class:`LVLMModule` and any data module taking ``tokenizer``, ``template`` and ``modalities``.

    The data side is given the module's tokenizer (placeholders added), its chat template and its modality
    objects, so none is written twice in a recipe.
    """

    def add_arguments_to_parser(self, parser) -> None:
        parser.link_arguments("model", "data.init_args.tokenizer", compute_fn=_tokenizer_of, apply_on="instantiate")
        parser.link_arguments("model", "data.init_args.modalities", compute_fn=_modalities_of, apply_on="instantiate")
        parser.link_arguments("model", "data.init_args.template", compute_fn=_template_of, apply_on="instantiate")

    def instantiate_trainer(self, **kwargs: Any) -> Any:
        """The trainer, with :class:`StepProgressBar` unless the recipe turns the bar off or brings its own."""
        config = self._get(self.config_init, "trainer", default={})
        callbacks = config.get("callbacks") or []
        own_bar = any(isinstance(c, ProgressBar) for c in (callbacks if isinstance(callbacks, list) else [callbacks]))
        if config.get("enable_progress_bar") is not False and not own_bar and "callbacks" not in kwargs:
            kwargs["callbacks"] = [*(callbacks if isinstance(callbacks, list) else [callbacks]), StepProgressBar()]
        return super().instantiate_trainer(**kwargs)

    def _parse_ckpt_path(self) -> None:
        """Never apply (or import) a checkpoint's saved settings: LightningCLI's own version loads them over the
        recipe. The checkpoint Lightning then loads (whatever named it) is checked by :func:`_guard`."""

    def _guard(self) -> None:
        """Before any work: the checkpoint Lightning resolves and loads (``--ckpt_path PATH``, ``last``, ``hpc``,
        a SLURM requeue's) is read safely, may not hold the run's export, and its settings are compared with the
        recipe's (:mod:`lvlm.apps.checkpoint_guard`)."""
        check_named_checkpoint(self.config[self.subcommand].get("ckpt_path"), self.model, self.subcommand)
        guard_checkpoint_loading(self.trainer, self.subcommand)

    before_fit = before_validate = before_test = before_predict = _guard


def build_cli(args: list[str], run: bool = True) -> LVLMCLI:
    """The CLI over ``args`` (``["fit", "-c", "recipe.yaml", ...]`` when ``run``)."""
    return LVLMCLI(
        LVLMModule,
        LightningDataModule,
        subclass_mode_data=True,
        seed_everything_default=0,
        save_config_kwargs={"overwrite": True},
        parser_kwargs={"parser_mode": "omegaconf", "exit_on_error": False},  # recipe_errors reports the mistake
        auto_configure_optimizers=False,
        args=rewrite_args(args),
        run=run,
    )


def has_recipe(argv: list[str]) -> bool:
    """A ``-c`` file or a ``--config`` recipe (one with ``trainer``/``data`` sections or a ``model:`` mapping); a
    ``--config`` of batched generation's own settings (``model: CKPT_DIR``) is not one."""
    for flag, value in zip(argv, [*argv[1:], None]):
        flag, inline, text = flag.partition("=")
        value = text if inline else value
        if flag == "-c" or (flag in CONFIG_FLAGS and value is not None and _is_recipe(value)):
            return True
    return False


def _is_recipe(path: str) -> bool:
    settings = read_yaml_or_none(path)  # an unreadable file counts as a recipe: LightningCLI names it
    return (
        not isinstance(settings, dict)
        or bool({"trainer", "data"} & set(settings))
        or isinstance(settings.get("model"), dict)
    )


def lightning_main(command: str, argv: list[str]) -> int:
    """``lvlm fit|validate|test|predict ARGS`` (LightningCLI; ``lvlm predict`` without a recipe is batched generation,
    which :mod:`lvlm.apps.cli` sends to :mod:`lvlm.apps.predict`)."""
    if not any(arg.startswith("--weights_only") for arg in argv):
        # --ckpt_path never unpickles code: Lightning's checkpoints hold plain containers and tensors.
        argv = [*argv, "--weights_only=true"]
    with warnings.catch_warnings(), recipe_errors(argv):
        quiet_training_output()
        build_cli([command, *argv])
    return 0
