"""``lvlm quickstart`` of this checkout against the quickstart of another checkout, one after the other.

Each side runs the whole command (world, tokenizer, towers, both stages, evaluation) in a fresh empty folder, in
its own process with ``PYTHONPATH`` set to its checkout, so both use this environment's packages. Sides take turns
over ``--rounds`` (baseline first in odd rounds, this checkout first in even ones). The script prints each run's wall
time, the parts the quickstart reports, the load average around it and its accuracy table, then the ratio of the
fastest runs and whether the tables are equal (``--json`` writes all of it). It asserts nothing about time.

    git worktree add /tmp/before <commit>
    python benchmarks/quickstart_time.py --baseline /tmp/before --json quickstart_time.json
    python benchmarks/quickstart_time.py --baseline /tmp/before --fast --steps-scale 0.01   # a smoke run
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent.parent
RUN = "import sys; from lvlm.apps.cli import main; sys.argv = ['lvlm', 'quickstart', *sys.argv[1:]]; sys.exit(main())"
PART = re.compile(r"([a-z][a-z0-9 ]*?) (\d+)s")


def quickstart(checkout: Path, args: list[str]) -> dict:
    """One ``lvlm quickstart`` of ``checkout`` in an empty folder: wall seconds, reported parts, table lines."""
    env = os.environ | {"PYTHONPATH": str(checkout), "HF_HUB_OFFLINE": "1"}
    with tempfile.TemporaryDirectory(prefix="quickstart-time-") as folder:
        load_before, start = os.getloadavg()[0], time.perf_counter()
        done = subprocess.run(
            [sys.executable, "-c", RUN, *args], cwd=folder, env=env, capture_output=True, text=True, check=False
        )
        wall, load_after = time.perf_counter() - start, os.getloadavg()[0]
    if done.returncode != 0:
        raise SystemExit(f"quickstart of {checkout} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    lines = done.stdout.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("question_type"))
    table = []
    for line in lines[header:]:
        if not line.strip():
            break
        table.append(line)
    reported = next(line for line in lines if line.startswith("wall time "))
    parts = {name: int(seconds) for name, seconds in PART.findall(reported[reported.index("(") :])}
    return {"wall_s": round(wall, 1), "parts_s": parts, "load": [load_before, load_after], "table": table}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--baseline", required=True, type=Path, help="checkout of the version to compare with")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--fast", action="store_true", help="lvlm quickstart --fast on both sides")
    parser.add_argument("--steps-scale", type=float, help="passed to both quickstarts")
    parser.add_argument("--json", help="write the results here")
    args = parser.parse_args()
    options = ["--fast"] * args.fast + (["--steps-scale", str(args.steps_scale)] if args.steps_scale else [])
    sides = {"baseline": args.baseline.resolve(), "lvlm": HERE}
    runs: dict[str, list[dict]] = {side: [] for side in sides}
    for round_ in range(args.rounds):
        for side in sides if round_ % 2 == 0 else reversed(sides):
            result = quickstart(sides[side], options)
            runs[side].append(result)
            print(f"{side} (round {round_ + 1}): {result['wall_s']:.1f} s wall, parts {result['parts_s']}, "
                  f"load average {result['load'][0]:.2f} -> {result['load'][1]:.2f}", flush=True)  # fmt: skip
            print("\n".join("  " + line for line in result["table"]), flush=True)
    best = {side: min(r["wall_s"] for r in results) for side, results in runs.items()}
    ratio = best["lvlm"] / best["baseline"]
    same_table = runs["lvlm"][0]["table"] == runs["baseline"][0]["table"]
    print(f"lvlm/baseline wall time (fastest runs): {ratio:.3f}; tables equal: {same_table}")
    if args.json:
        settings = {"baseline": str(sides["baseline"]), "options": options, "rounds": args.rounds}
        result = {"settings": settings, "runs": runs, "best_wall_s": best, "ratio": round(ratio, 3)}
        Path(args.json).write_text(json.dumps(result | {"tables_equal": same_table}, indent=2) + "\n")


if __name__ == "__main__":
    main()
