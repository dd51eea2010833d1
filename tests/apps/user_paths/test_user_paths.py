"""What users run, on what ``lvlm fit`` really writes: the real ``LVLMDataModule`` on real shards, a tiny real
recipe per tower family (LanguageBind-style towers, timm ViTs on both modalities, the depth plugin), the installed
``lvlm`` command in its own process.

For each family: a run killed with SIGKILL after its second step and resumed (``--ckpt_path PATH``, or ``last``)
ends with the weights of an uninterrupted run; every checkpoint is plain data; ``lvlm convert --checkpoint`` and
``lvlm merge-lora`` of the last checkpoint give the exported model; the export records the frames it was trained
on; chat, predict, serve (through the official ``openai`` client) and eval answer alike on it. The same for an
FSDP2 run's sharded checkpoints (two processes, gloo).
"""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
from pathlib import Path

import openai
import pytest
import torch

from lvlm import VideoLLaVA
from lvlm.inference.session import load_session
from tests.apps.serve_fixtures import data_url
from tests.apps.user_paths.runs import (
    REPO,
    assert_same_weights,
    exported_weights,
    free_port,
    is_plain,
    kill_when,
    run,
    stall_callback,
    start,
)
from tests.apps.user_paths.worlds import FRAMES, MAX_STEPS, depth_world, lvlm_command, synthetic_world, write_recipe
from tests.processes import alive, command_line, descendants, kill_alive
from tests.waiting import wait_until

pytestmark = pytest.mark.slow
KILL_AT = 2  # killed at the start of step 3 (mid-epoch: 3 batches per epoch), resumed from step 2's checkpoint
# A resumed run recomputes steps 3-4 from the restored state; their float rounding may differ in the last bits (seen
# in CI, twice: 1.0e-6 on one LoRA-merged weight, 18 of 168 tensors off by 1e-7 to 1e-6; exact in 14 runs elsewhere).
# A wrong data position or state moves weights by about one step's update (lr 1e-2): the tests check that the
# steps after the kill moved the weights by far more than this tolerance.
RESUME_ATOL = 1e-5
RESUME = {"languagebind": "path", "timm": "last", "depth": "path"}
MIME = {"image": "image/png", "video": "video/mp4", "depth": "image/png"}


@pytest.fixture(scope="module", params=["languagebind", "timm", "depth"])
def world(request, tmp_path_factory):
    root = tmp_path_factory.mktemp(request.param)
    if request.param == "depth":
        pytest.importorskip("lvlm_depth", reason="the depth plugin is not installed (examples/lvlm-depth)")
        return depth_world(root)
    return synthetic_world(root, request.param)


@pytest.fixture(scope="module")
def runs(world):
    """An uninterrupted run, and one killed at step 2 then resumed by the same command with ``--ckpt_path``."""
    lvlm = lvlm_command()
    full, killed = world.root / "full", world.root / "killed"
    marker = world.root / "stalled"
    full_recipe = write_recipe(world, full, "full")
    killed_recipe = write_recipe(world, killed, "killed", [stall_callback(marker, KILL_AT)])
    victim = start([lvlm, "fit", "-c", str(killed_recipe)], world.root / "killed.log")
    try:
        run([lvlm, "fit", "-c", str(full_recipe)])
        kill_when(marker, victim, world.root / "killed.log")
    finally:
        if victim.poll() is None:
            victim.kill()
    assert victim.returncode == -signal.SIGKILL and not (killed / "model").exists()
    ckpt = "last" if RESUME[world.family] == "last" else str(killed / "checkpoints" / f"epoch=0-step={KILL_AT}.ckpt")
    resumed = run([lvlm, "fit", "-c", str(killed_recipe), "--ckpt_path", ckpt])
    return {"full": full, "killed": killed, "resume_log": resumed.stdout + resumed.stderr}


def test_a_killed_run_resumes_to_the_weights_of_an_uninterrupted_one(world, runs):
    at = runs["killed"] / "checkpoints" / f"epoch=0-step={KILL_AT}.ckpt"
    if RESUME[world.family] == "last":  # Lightning resolves `last` to the newest last*.ckpt: the one of step 2
        assert "resuming from" in runs["resume_log"] and "last" in runs["resume_log"]
    else:
        assert f"resuming from {at}" in runs["resume_log"]
    full = exported_weights(runs["full"] / "model")
    assert_same_weights(exported_weights(runs["killed"] / "model"), full, atol=RESUME_ATOL)
    start_state = torch.load(at, weights_only=True)["state_dict"]
    moved = (start_state["model.projector.0.weight"] - full["projector.0.weight"]).abs().max().item()
    assert moved > 100 * RESUME_ATOL, moved  # steps 3-4 trained: the tolerance cannot hide a wrong resume
    lora = [k for k in start_state if "lora_B" in k]
    assert lora and not all(torch.equal(start_state[k], torch.zeros_like(start_state[k])) for k in lora)


def test_every_checkpoint_of_a_real_run_is_plain_data(runs):
    checkpoints = sorted((runs["full"] / "checkpoints").glob("*.ckpt"))
    steps = [f"epoch={(s - 1) // 3}-step={s}.ckpt" for s in range(1, MAX_STEPS + 1)]  # 3 batches per epoch
    assert [p.name for p in checkpoints] == sorted([*steps, "last.ckpt"])
    for path in checkpoints:
        checkpoint = torch.load(path, weights_only=True)  # a pickled class anywhere would fail here
        for key in ("hyper_parameters", "datamodule_hyper_parameters", "lvlm_media"):
            assert is_plain(checkpoint[key]), f"{path.name}: {key} holds more than plain data: {checkpoint[key]}"
        assert checkpoint["datamodule_hyper_parameters"]["template"]["class_path"] == "lvlm.data.templates.VicunaV1"


def test_convert_and_merge_lora_of_the_last_checkpoint_give_the_exported_model(runs, tmp_path):
    convert_and_merge_last_checkpoint(runs["full"], tmp_path)


def test_the_model_records_the_frames_it_was_trained_on(world, runs, caplog):
    model = runs["full"] / "model"
    specs = json.loads((model / "lvlm_config.json").read_text())["modality_specs"]
    framed = {name for name, spec in specs.items() if "num_frames" in spec["seen"]}
    assert framed == ({"video"} if world.family != "depth" else set())
    for name in framed:
        assert specs[name]["seen"]["num_frames"] == FRAMES[world.family]
    assert all(spec["seen"]["preprocessing"]["size"] for spec in specs.values())
    session = load_session(model)
    if framed:
        assert session.num_frames == FRAMES[world.family]
        with caplog.at_level(logging.WARNING):
            load_session(model, num_frames=FRAMES[world.family] + 3)
            load_session(model, num_frames=FRAMES[world.family] + 3)
        warned = [r for r in caplog.records if "num_frames" in r.getMessage()]
        assert len(warned) == 1 and f"the {FRAMES[world.family]!r} the model was trained with" in warned[0].getMessage()


def test_chat_predict_serve_and_eval_answer_alike_on_the_export(world, runs, tmp_path):
    lvlm, model = lvlm_command(), str(runs["full"] / "model")
    run([lvlm, "predict", "--model", model, "--questions", str(world.questions), "--out", str(tmp_path / "p.jsonl"),
         "--max-new-tokens", "3", "--no-progress"])  # fmt: skip
    rows = [json.loads(line) for line in (tmp_path / "p.jsonl").read_text().splitlines()]
    predicted = {row["key"]: row["prediction"] for row in rows}
    questions = json.loads(world.questions.read_text())
    assert sorted(predicted) == sorted(q["question_id"] for q in questions)

    first = questions[0]
    kind = next(k for k in world.media if k in first)
    chat = run([lvlm, "chat", "--model", model, "--media", f"{kind}={first[kind]}", "--temperature", "0",
                "--max-new-tokens", "3"], stdin=f"{first['question']}\n/exit\n")  # fmt: skip
    assert chat.stdout.split("ASSISTANT: ")[1].split("\nUSER:")[0].strip() == predicted[first["question_id"]].strip()

    port = free_port()
    serve = [lvlm, "serve", "--model", model, "--port", str(port), "--served-model-name", "m"]
    server = start(serve, tmp_path / "serve.log")
    try:
        client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="unused", max_retries=8, timeout=120)
        part = {"type": f"{kind}_url", f"{kind}_url": {"url": data_url(first[kind], MIME[kind])}}
        reply = client.chat.completions.create(
            model="m", temperature=0, max_tokens=3,
            messages=[{"role": "user", "content": [part, {"type": "text", "text": first["question"]}]}],
        )  # fmt: skip
    finally:
        server.kill()
        server.wait(timeout=30)
    assert reply.choices[0].message.content.strip() == predicted[first["question_id"]].strip()

    run([lvlm, "eval", "vqa", "--model", model, "--questions-json", str(world.questions), "--annotations",
         str(world.answers), "--out", str(tmp_path / "eval"), "--max-new-tokens", "3"])  # fmt: skip
    result = json.loads((tmp_path / "eval" / "vqa.json").read_text())
    assert result["counts"]["scored"] == len(questions)
    towers = json.loads((runs["full"] / "model" / "lvlm_config.json").read_text())["towers"]
    assert set(VideoLLaVA.from_pretrained(model).modalities) == set(towers)


# --- FSDP2: sharded (DCP) checkpoints -------------------------------------------------------------------------
CPU_FSDP = ["--trainer.accelerator=cpu", "--trainer.devices=2", "--trainer.strategy.init_args.data_parallel_size=2"]


def torchrun(recipe, *args: str) -> list[str]:
    """``torchrun --standalone --nproc_per_node=2 -m lvlm fit -c RECIPE -c recipes/trainer/fsdp.yaml`` on CPU."""
    launcher = str(Path(sys.executable).parent / "torchrun")
    fsdp = str(REPO / "recipes" / "trainer" / "fsdp.yaml")
    return [launcher, "--standalone", "--nproc_per_node=2", "-m", "lvlm", "fit", "-c", str(recipe), "-c", fsdp,
            *CPU_FSDP, *args]  # fmt: skip


@pytest.fixture(scope="module")
def sharded_runs(tmp_path_factory):
    """An uninterrupted 2-process FSDP2 run, and one killed (SIGKILL to every process) after step 2 and resumed
    with ``--ckpt_path last``: Lightning resolves it to a sharded folder, which lvlm checks before torch reads it."""
    world = synthetic_world(tmp_path_factory.mktemp("sharded"), "languagebind")
    full, killed, marker = world.root / "full", world.root / "killed", world.root / "stalled"
    killed_recipe = write_recipe(world, killed, "killed", [stall_callback(marker, KILL_AT)])
    victim = start(torchrun(killed_recipe), world.root / "k.log")
    try:
        run(torchrun(write_recipe(world, full, "full")))
        kill_when(marker, victim, world.root / "k.log")
    finally:
        if victim.poll() is None:
            os.killpg(victim.pid, signal.SIGKILL)
    resumed = run(torchrun(world.root / "killed.yaml", "--ckpt_path", "last"))
    return {"full": full, "killed": killed, "resume_log": resumed.stdout + resumed.stderr}


def test_a_killed_fsdp2_run_resumes_from_last_to_the_uninterrupted_weights(sharded_runs):
    step2 = sharded_runs["killed"] / "checkpoints" / f"epoch=0-step={KILL_AT}.ckpt"
    assert sorted(p.name for p in step2.iterdir()) == [".metadata", "__0_0.distcp", "__1_0.distcp", "meta.pt"]
    assert "resuming from" in sharded_runs["resume_log"] and "last" in sharded_runs["resume_log"]
    full, killed = exported_weights(sharded_runs["full"] / "model"), exported_weights(sharded_runs["killed"] / "model")
    assert_same_weights(killed, full, atol=RESUME_ATOL)
    assert is_plain(torch.load(step2 / "meta.pt", weights_only=True)["hyper_parameters"])


def test_convert_and_merge_lora_of_a_sharded_checkpoint_give_the_exported_model(sharded_runs, tmp_path):
    merged = convert_and_merge_last_checkpoint(sharded_runs["full"], tmp_path)[-1]
    run([lvlm_command(), "predict", "--model", str(merged), "--questions", str(sharded_runs["full"].parent / "q.json"),
         "--out", str(tmp_path / "p.jsonl"), "--max-new-tokens", "2", "--no-progress"])  # fmt: skip
    assert len((tmp_path / "p.jsonl").read_text().splitlines()) == 2


def test_the_ranks_of_a_killed_torchrun_stop(tmp_path):
    """``kill -9`` of the torchrun launcher alone (``kill PID``, the out-of-memory killer): its ranks run in sessions
    of their own, so no signal reaches them; each stops by itself once the launcher is gone, instead of training on
    into the run folder beside the run a user resumes there."""
    world = synthetic_world(tmp_path, "languagebind")
    marker, log = world.root / "stalled", world.root / "orphaned.log"
    recipe = write_recipe(world, world.root / "orphaned", "orphaned", [stall_callback(marker, KILL_AT)])
    launcher = start(torchrun(recipe), log)
    ranks: list[int] = []
    try:
        wait_until(lambda: marker.exists() or launcher.poll() is not None, "a rank to stall", timeout=300, poll_s=0.1)
        assert launcher.poll() is None, log.read_text()[-3000:]
        ranks = [pid for pid in descendants(launcher.pid) if "lvlm" in command_line(pid)]
        assert len(ranks) == 2, ranks
        launcher.kill()  # the launcher only (its process, not its group, not the ranks)
        launcher.wait(timeout=30)
        wait_until(lambda: not any(alive(pid) for pid in ranks), "the ranks to stop without their launcher", 30, 0.1)
    finally:
        kill_alive([launcher.pid, *ranks])
    assert "is gone; stopping here" in log.read_text()


def convert_and_merge_last_checkpoint(run_dir: Path, out: Path) -> list[Path]:
    """``lvlm convert --checkpoint`` and ``lvlm merge-lora`` of a run's last checkpoint (a file or a sharded folder)
    give the model the run exported, with its media record."""
    last, lvlm = run_dir / "checkpoints" / f"epoch=1-step={MAX_STEPS}.ckpt", lvlm_command()
    outs = [out / "converted", out / "merged"]
    run([lvlm, "convert", "--checkpoint", str(last), "--out", str(outs[0])])
    run([lvlm, "merge-lora", "--checkpoint", str(last), "--out", str(outs[1])])
    exported = exported_weights(run_dir / "model")
    expected = json.loads((run_dir / "model" / "lvlm_config.json").read_text())["modality_specs"]
    for directory in outs:
        assert_same_weights(exported_weights(directory), exported)
        assert json.loads((directory / "lvlm_config.json").read_text())["modality_specs"] == expected
    return outs
