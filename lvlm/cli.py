"""The ``lvlm`` command."""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``lvlm`` console script."""
    argv = list(sys.argv[1:] if argv is None else argv)
    print("usage: lvlm {fit,validate,test,predict,run,shards,chat,eval,merge-lora,convert,quickstart} ...")
