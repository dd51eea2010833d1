"""``lvlm predict`` that stops after N written batches (for the SIGKILL test): it touches MARKER and sleeps.

    python tests/apps/predict_blocker.py N MARKER [lvlm predict arguments]

The real command runs unchanged; only the part writer is wrapped, so the kill lands after batch N was made
durable, exactly where an interrupted run would be.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from lvlm.apps.cli import main
from lvlm.inference import predict_output


def block_after(batches: int, marker: Path) -> None:
    write = predict_output.PartWriter.write
    written = 0

    def write_then_block(self: predict_output.PartWriter, batch: predict_output.PredictionResult) -> None:
        nonlocal written
        write(self, batch)
        written += 1
        if written == batches:
            marker.touch()
            time.sleep(600)

    predict_output.PartWriter.write = write_then_block


if __name__ == "__main__":
    block_after(int(sys.argv[1]), Path(sys.argv[2]))
    main(["predict", *sys.argv[3:]])
