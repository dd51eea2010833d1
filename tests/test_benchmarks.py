"""The benchmark scripts run end to end on small settings and print their comparisons.

Only that they work and compare what they claim is asserted (same tokens, same loss, every row measured);
never a timing or a ratio.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"


def run(script: str, *args: str) -> str:
    env = os.environ | {"HF_HUB_OFFLINE": "1"}
    done = subprocess.run(
        [sys.executable, str(BENCHMARKS / script), *args], capture_output=True, text=True, env=env, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def test_load_memory_compares_both_dtypes():
    out = run("load_memory.py", "--layers", "1")
    assert "float32: lvlm/hf anon" in out and "bfloat16: lvlm/hf anon" in out
    rows = [line.split() for line in out.splitlines() if line.startswith(("hf ", "lvlm "))]
    assert {(r[0], r[1]) for r in rows} == {(s, d) for s in ("hf", "lvlm") for d in ("float32", "bfloat16")}
    lvlm_bf16 = next(r for r in rows if r[:2] == ["lvlm", "bfloat16"])
    assert int(lvlm_bf16[2]) > 0  # weights MiB measured from the loaded model


def test_train_step_sides_start_from_the_same_loss(tmp_path):
    out = run("train_step.py", "--steps", "1", "--warmup", "0", "--rounds", "1", "--json", str(tmp_path / "t.json"))
    table = [line.split() for line in out.splitlines() if line.startswith(("lvlm ", "hf ")) and "per round" not in line]
    losses = {row[0]: float(row[-1]) for row in table}
    assert set(losses) == {"lvlm", "hf"} and losses["lvlm"] == losses["hf"]
    assert "lvlm/hf: time" in out
    result = json.loads((tmp_path / "t.json").read_text())
    assert set(result["ratios"]) == {"time", "peak_rss", "step_memory"} and not result["settings"]["padded"]
    assert abs(result["best"]["lvlm"]["first_loss"] - result["best"]["hf"]["first_loss"]) <= 1e-5


def test_chunked_loss_matches_the_baseline_loss(tmp_path):
    out = run("chunked_loss.py", "--rows", "64", "--vocab", "512", "--rounds", "1", "--json", str(tmp_path / "c.json"))
    result = json.loads((tmp_path / "c.json").read_text())
    losses = {side: rounds[0]["loss"] for side, rounds in result["rounds"].items()}
    assert set(losses) == {"lvlm", "baseline"} and abs(losses["lvlm"] - losses["baseline"]) <= 1e-5
    assert set(result["ratios"]) == {"time", "added_memory"} and "lvlm/baseline: time" in out


@pytest.mark.parametrize("decoder", [[], ["--decoder", "compiled", "--clock", "cpu"]], ids=["batch", "compiled"])
def test_generate_produces_the_same_tokens(decoder):
    args = ["--vision-width", "64", "--vision-layers", "1", "--llm-width", "64", "--llm-layers", "1", "--frames", "2"]
    out = run("generate.py", *args, "--new-tokens", "2", "--batch-sizes", "1", "--repeats", "1", *decoder)
    assert "same tokens: yes" in out
    assert ("compiled decoder, first video call (warm-up)" in out) == bool(decoder)


@pytest.mark.parametrize("extra", [[], ["--reencode", "112"]], ids=["raw", "reencoded"])
def test_data_throughput_measures_every_pipeline(extra):
    out = run("data_throughput.py", "--clips", "1", "--images", "1", "--distinct", "1", "--workers", "1", *extra)
    assert "could not run" not in out
    assert "baseline (original procedure)" in out and "lvlm DataModule, raw" in out
    if extra:
        assert "lvlm DataModule, --reencode 112" in out


def test_packing_reports_useful_fractions_of_every_layout(tmp_path):
    out = run("packing.py", "--samples", "600", "--steps", "1", "--scale", "64", "--json", str(tmp_path / "p.json"))
    result = json.loads((tmp_path / "p.json").read_text())
    assert (
        set(result["useful_fraction"]) == set(result["step_time_per_useful_token"]) == {"padded", "grouped", "packed"}
    )
    fractions = result["useful_fraction"]
    assert 0 < fractions["padded"] < fractions["grouped"] < fractions["packed"] <= 1
    assert set(result["stages"]) == {"stage1", "stage2"} and "stage2:" in out
    assert set(result["packed_over_grouped"]) == {"stage1", "stage2"} and "packed (dense mask)" in out


def test_gpu_step_tiny_preset_runs_both_layouts_under_fsdp2(tmp_path):
    out = run("gpu_step.py", "--preset", "tiny", "--steps", "1", "--warmup", "0", "--json", str(tmp_path / "g.json"))
    result = json.loads((tmp_path / "g.json").read_text())
    assert set(result["layouts"]) == {"padded", "packed"} and result["settings"]["world_size"] == 1
    for layout in result["layouts"].values():
        assert layout["tokens_per_s"] > 0 and layout["peak_memory_gib"] > 0 and layout["mfu"] is None
    assert "packed " in out and "MFU" in out


def test_fsdp_host_memory_fills_every_shard_exactly(tmp_path):
    out = run("fsdp_host_memory.py", "--width", "128", "--layers", "1", "--json", str(tmp_path / "m.json"))
    result = json.loads((tmp_path / "m.json").read_text())
    assert len(result["peak_rss_per_rank_mib"]) == 2 and result["single_process_peak_rss_mib"] > 0
    assert result["ratio"] == round(max(result["peak_rss_per_rank_mib"]) / result["single_process_peak_rss_mib"], 3)
    assert (
        result["shards_mismatched"] == 0
        and result["shards_filled_per_rank"][0] == result["shards_filled_per_rank"][1] > 0
    )
    assert "ratio" in out


def test_shards_scaling_measures_both_worker_counts_in_both_modes(tmp_path):
    path = tmp_path / "scaling.json"
    args = ["--records", "6", "--copy-records", "6", "--video-seconds", "0.4", "--size", "64", "--distinct", "2"]
    out = run("shards_scaling.py", *args, "--reencode", "32", "--workers", "2", "--json", str(path))
    result = json.loads(path.read_text())
    assert json.loads(out.splitlines()[-1]) == result
    assert (
        set(result["records_per_s"]) == {"1", "2"}
        and result["records"] == {"copy": 6, "reencode": 6}
        and result["cores"] == 2
    )
    for mode in ("copy", "reencode"):
        rates = result["modes"][mode]["records_per_s"]
        assert rates["1"] > 0 and rates["2"] > 0 and result["modes"][mode]["identical_samples"] is True
        assert result["modes"][mode]["speedup"] == pytest.approx(rates["2"] / rates["1"])
    assert result["records_per_s"] == result["modes"]["reencode"]["records_per_s"]
    assert result["modes"]["copy"]["identical_bytes"] is True


def test_serve_load_checks_answers_and_writes_speedups(tmp_path):
    out = run("serve_load.py", "--small", "--requests", "2", "--concurrency", "1", "2", "--min-tokens", "3",
              "--max-tokens", "5", "--json", str(tmp_path / "load.json"))  # fmt: skip
    assert "same greedy answers at every concurrency: yes" in out
    assert "lvlm serve: stopped after" in out  # the server's own count of the requests it batched
    result = json.loads((tmp_path / "load.json").read_text())
    assert set(result["speedup_at_2"]) == {"image", "mix"} and result["identical_answers"] is True
    runs = result["results"]["mix"]
    assert [r["clients"] for r in runs] == [1, 2] and all(r["output_tokens"] >= 2 * 3 for r in runs)


def test_quickstart_time_runs_both_checkouts_and_compares_their_tables(tmp_path):
    """This checkout against itself: two runs of one seed print the same table (the quickstart is deterministic)."""
    tiny = ["--fast", "--steps-scale", "0.01", "--json", str(tmp_path / "q.json")]
    out = run("quickstart_time.py", "--baseline", str(BENCHMARKS.parent), *tiny)
    result = json.loads((tmp_path / "q.json").read_text())
    assert set(result["runs"]) == {"baseline", "lvlm"} and result["tables_equal"] is True
    for (run_,) in result["runs"].values():
        assert run_["table"][0].startswith("question_type") and run_["table"][-1].startswith("all")
        assert {"towers", "stage 1", "stage 2", "evaluation"} <= set(run_["parts_s"])
    assert "lvlm/baseline wall time (fastest runs):" in out and "tables equal: True" in out
