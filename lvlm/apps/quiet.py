"""Messages ``lvlm fit`` keeps off the screen because the user cannot act on them.

Each filter names what it hides and why; anything else Lightning or jsonargparse says still shows.
"""

from __future__ import annotations

import logging
import os
import warnings

# (message regex, why it is not the user's to act on)
HIDDEN_WARNINGS = (
    (r"Found \d+ module\(s\) in eval mode", "lvlm keeps frozen towers in eval mode on purpose (no dropout)"),
    (r"`isinstance\(treespec, LeafSpec\)` is deprecated", "inside Lightning, with this torch version"),
    (r"Your `IterableDataset` has `__len__` defined", "lvlm's streams split shards by rank and worker themselves"),
    (r"LightningCLI's args parameter", "`lvlm` passes its own argv on purpose"),
)


class _NoTips(logging.Filter):
    """Lightning's advertisements for other packages ("💡 Tip: ... try installing litlogger")."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "💡 Tip" not in record.getMessage()


def quiet_training_output() -> None:
    """Install the filters (idempotent)."""
    for pattern, _reason in HIDDEN_WARNINGS:
        warnings.filterwarnings("ignore", message=pattern)
    # jsonargparse's deprecation notices are about Lightning's own calls into it.
    os.environ.setdefault("JSONARGPARSE_DEPRECATION_WARNINGS", "off")
    for name in ("lightning.pytorch.utilities.rank_zero", "lightning.fabric.utilities.rank_zero"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, _NoTips) for f in logger.filters):
            logger.addFilter(_NoTips())
