"""`lvlm ablate` in miniature: the grid's structure, its resumption, and diagnostics that tell the arms apart."""

from __future__ import annotations

import json
import random

import pytest
import torch

from lvlm.apps.ablate import Ablate, GridPlan, main, plan_from, run_grid, world_sizes
from lvlm.apps.ablate_data import keep_sample, without_question_type
from lvlm.apps.ablate_table import comparisons, summarize
from lvlm.apps.ablate_towers import build_towers, warm_up_unified
from lvlm.apps.command import parse_command
from lvlm.apps.quickstart_towers import WarmupSettings, _scenes, video_batch
from lvlm.core.errors import UserError
from lvlm.eval.alignment import alignment_scores
from lvlm.models.checkpoints.languagebind import load_languagebind_tower
from lvlm.models.projector import MLPGeluProjector

TINY = GridPlan(
    stage2_train=40,
    stage2_test=12,
    warmup_steps=2,
    stage2_steps=2,
    seeds=(0, 1),
    cells=(("unified", "transfer"), ("random", "transfer")),
    diagnostic_videos=8,
)


def _record(modality: str, types: list[str]) -> dict:
    turns = []
    for i, kind in enumerate(types):
        turns += [{"from": "human", "value": (f"<{modality}>\n" if i == 0 else "") + f"q {kind}?"}]
        turns += [{"from": "gpt", "value": f"a {kind}"}]
    meta = {"modality": modality, "question_types": types, "answers": [f"a {t}" for t in types]}
    return {"conversations": turns, "meta": meta | {"choices": {t: ["x"] for t in types}}}


def test_transfer_arm_drops_video_shape_questions_and_moves_the_placeholder():
    record = keep_sample("transfer", _record("video", ["shape", "color", "direction"]))
    assert record["meta"]["question_types"] == ["color", "direction"] and "shape" not in record["meta"]["choices"]
    assert [t["value"] for t in record["conversations"][::2]] == ["<video>\nq color?", "q direction?"]
    assert keep_sample("transfer", _record("image", ["shape", "color"]))["meta"]["question_types"] == ["shape", "color"]
    assert without_question_type(_record("video", ["shape"]), "shape") is None
    assert keep_sample("image_only", _record("video", ["color"])) is None
    assert keep_sample("video_only", _record("text", ["text"])) is not None


def test_plan_options_and_one_line_refusals():
    fast = plan_from(parse_command(Ablate, ["--fast", "--seeds", "3", "--cells", "random:video_only"]))
    assert fast.seeds == (0, 1, 2) and fast.cells == (("random", "video_only"),)
    assert len(plan_from(parse_command(Ablate, [])).seeds) >= 3
    with pytest.raises(UserError, match="TOWER:DATA"):
        plan_from(parse_command(Ablate, ["--cells", "unified:audio"]))
    with pytest.raises(UserError, match="--seeds"):
        plan_from(parse_command(Ablate, ["--seeds", "0"]))


@pytest.mark.slow
def test_tiny_grid_writes_one_table_and_resumes_by_run(tmp_path, capsys, one_thread):
    """About 40 s on 2 cores: 2 cells x 2 seeds, two steps each."""
    table = run_grid(TINY, tmp_path)
    assert table["runs"] == 4 and set(table["cells"]) == {"unified-transfer", "random-transfer"}
    cell = table["cells"]["unified-transfer"]
    assert len(cell["all/all"]["values"]) == 2 and {"retrieval_after", "cka_before", "norm_ratio_video"} <= set(cell)
    assert "shape/video" in cell  # the held-out concept is still asked
    assert any(c["metric"] == "retrieval_after" and c["a"] == "unified-transfer" for c in table["comparisons"])
    markdown = (tmp_path / "ablation.md").read_text()
    assert "| metric | unified-transfer | random-transfer |" in markdown and "exceeds" in markdown
    assert json.loads((tmp_path / "ablation.json").read_text())["runs"] == 4
    for run in ("unified-transfer/seed0", "random-transfer/seed1"):
        logs = tmp_path / "runs" / run / "runs" / "stage2" / "tensorboard"
        assert list(logs.glob("events.out.tfevents.*")), run
    for arm in ("unified", "random"):  # ordinary LanguageBind tower directories, for any recipe
        folder = tmp_path / "towers" / arm / "seed1" / "video"
        tower = load_languagebind_tower(folder, modality="video", select_layer=-1)
        assert tower.frozen and tower.num_frames == 4
    shard = sorted((tmp_path / "data" / "transfer" / "stage2").glob("train-*.tar"))
    assert shard and json.loads((tmp_path / "data" / "transfer" / "arm.json").read_text())["counts"]

    # Rerunning resumes: only the run whose result is missing trains again.
    finished = tmp_path / "runs" / "unified-transfer" / "seed0" / "result.json"
    kept = finished.stat().st_mtime_ns
    (tmp_path / "runs" / "random-transfer" / "seed1" / "result.json").unlink()
    with pytest.raises(UserError, match="plan.json"):  # other sizes or steps cannot resume this grid
        main(["--out", str(tmp_path), "--fast"])
    capsys.readouterr()
    assert run_grid(TINY, tmp_path)["runs"] == 4
    printed = capsys.readouterr().out
    assert "stage 2: towers random, data transfer, seed 1" in printed and "seed 0" not in printed
    assert finished.stat().st_mtime_ns == kept


def test_summary_says_whether_a_difference_exceeds_the_spread():
    def result(cell, seed, accuracy):
        row = {"question_type": "all", "modality": "all", "n": 10, "accuracy": accuracy, "chance": 0.25}
        return {"cell": cell, "seed": seed, "rows": [row], "alignment": {"pairs": {}, "norms": {}}}

    runs = [result(["unified", "joint"], s, a) for s, a in ((0, 0.9), (1, 0.8))]
    runs += [result(["random", "joint"], s, a) for s, a in ((0, 0.3), (1, 0.35))]
    summary = summarize(runs)
    assert summary["unified-joint"]["all/all"]["mean"] == pytest.approx(0.85)
    (found,) = comparisons(summary)
    assert (found["a"], found["b"]) == ("unified-joint", "random-joint") and found["exceeds_spread"]
    assert found["difference"] == pytest.approx(0.525) and found["spread"] == pytest.approx(0.0707 + 0.0354, abs=1e-3)


@pytest.fixture
def one_thread():
    """The grid's own setting (``--threads 1``): tiny models, and no spinning second thread on a loaded machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.slow
def test_diagnostics_rank_unified_towers_above_random_ones(one_thread):
    """About 15 s on 2 cores: 100 warm-up steps of the unified arm, then its videos against their middle frames."""
    sizes = world_sizes(TINY)
    unified = build_towers(0)
    warm_up_unified(*unified, sizes, WarmupSettings(steps=100, batch_size=16))
    scenes = _scenes(random.Random("diagnostics"), "video", 64, sizes)
    pre = unified[0].preprocessing
    pixels = video_batch(
        scenes,
        pre.size,
        sizes.video_frames,
        3,
        torch.tensor(pre.mean).view(3, 1, 1),
        torch.tensor(pre.std).view(3, 1, 1),
    )["pixels"]
    torch.manual_seed(0)
    projector = MLPGeluProjector(64, 128)
    scores = {}
    with torch.no_grad():
        for arm, (image, video) in (("unified", unified), ("random", build_towers(0))):
            videos, frames = video(pixels), image(pixels[:, sizes.video_frames // 2])
            before = alignment_scores(videos.mean(1), frames.mean(1))
            after = alignment_scores(projector(videos).mean(1), projector(frames).mean(1))
            scores[arm] = {
                k: (s["retrieval_a_to_b"] + s["retrieval_b_to_a"]) / 2
                for k, s in (("before", before), ("after", after))
            }
    chance = 1 / 64
    for where in ("before", "after"):
        assert scores["unified"][where] > scores["random"][where], scores
    assert scores["unified"]["after"] >= 3 * chance, scores
