"""``lvlm shards`` that stops after N logged shards (for the SIGKILL test): it touches MARKER and sleeps.

    python tests/apps/shards_blocker.py N MARKER [lvlm shards arguments]

The real command runs unchanged; only the progress log is wrapped, so the kill lands after shard N was made
durable, exactly where an interrupted conversion would be, whatever the speed of the machine.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

from lvlm.apps.cli import main
from lvlm.data.conversion_log import ConversionLog


def block_after(shards: int, marker: Path) -> None:
    append = ConversionLog.append
    logged = 0

    def append_then_block(self: ConversionLog, line: dict[str, Any]) -> None:
        nonlocal logged
        append(self, line)
        logged += "shard" in line
        if logged == shards:
            marker.touch()
            time.sleep(600)

    ConversionLog.append = append_then_block


if __name__ == "__main__":
    block_after(int(sys.argv[1]), Path(sys.argv[2]))
    main(["shards", *sys.argv[3:]])
