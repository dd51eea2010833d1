"""The depth plugin end to end through lvlm's own commands: shards, fit (both stages), predict, chat, eval,
convert; lvlm itself never names the plugin."""

from __future__ import annotations

import pytest

pytest.importorskip("lvlm_depth", reason="the plugin is not installed: pip install -e examples/lvlm-depth")

import json
import subprocess
from pathlib import Path

import numpy as np
import torch
import webdataset as wds
from depth_cli import argv, lvlm
from lvlm_depth import DepthModality, DepthTower
from lvlm_depth.example import WALL_MM, depth_map, write_depth_png

from lvlm import VideoLLaVA
from lvlm.apps.cli import run_command
from lvlm.core.errors import UnsafeInputError
from lvlm.eval.vqa_normalize import normalize_vqa_answer
from lvlm.inference.batch_generate import GenerationSettings, generate_batch
from lvlm.inference.prompts import prepare_prompt
from lvlm.inference.session import load_session

LVLM_SOURCE = Path(__file__).resolve().parents[3] / "lvlm"


def test_shards_store_each_record_depth_field_as_a_depth_png_member(world, shards):
    report = json.loads((shards / "report.json").read_text())
    assert (report["written"], report["skipped"]) == (16, 0)
    samples = list(wds.WebDataset(str(shards / "shard-000000.tar"), shardshuffle=False, empty_check=False))
    first = samples[0]
    assert sorted(k for k in first if not k.startswith("__")) == ["depth.png", "json"]
    assert first["depth.png"] == (world / "depths" / "d000.png").read_bytes()
    assert json.loads(first["json"])["source"] == {"depth": ["d000.png"]}


def test_fit_exports_a_model_that_records_the_plugin_by_class_path(model_dir):
    config = json.loads((model_dir / "lvlm_config.json").read_text())
    assert config["modality_specs"]["depth"]["class_path"] == "lvlm_depth.modality.DepthModality"
    assert config["modality_specs"]["depth"]["init_args"]["max_depth_mm"] == 10_000
    assert config["towers"]["depth"]["class_path"] == "lvlm_depth.tower.DepthTower"
    session = load_session(model_dir)
    depth = session.modalities["depth"]
    assert isinstance(depth, DepthModality) and isinstance(session.model.towers["depth"], DepthTower)
    assert (depth.token, depth.input_name, depth.num_tokens(1)) == ("<depth>", "depths", 16)


def test_session_decodes_16_bit_depth_to_normalised_one_channel_input(model_dir, world):
    session = load_session(model_dir)
    pixels = session.load("depth", world / "depths" / "d000.png")
    assert pixels.shape == (1, 32, 32) and pixels.dtype == torch.float32
    wall, near = (WALL_MM / 10_000 - 0.5) / 0.25, (800 / 10_000 - 0.5) / 0.25  # the tower's mean 0.5, std 0.25
    assert pixels.max().item() == pytest.approx(wall, abs=1e-4) and pixels.min().item() == pytest.approx(near, abs=1e-4)


def test_predict_answers_questions_naming_depth_files(model_dir, world):
    out = world / "predictions.jsonl"
    command = argv("predict", world)[1]
    assert run_command(command[0], [*command[1:], "--max-new-tokens", "3", "--no-progress"]) == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["key"] for r in rows] == ["q16", "q17", "q18", "q19"]
    assert all(r["prediction"] and r["answer"] in ("near", "far") for r in rows)


def test_chat_takes_a_depth_file_by_modality_name(model_dir, world):
    command = [*argv("chat", world)[1], "--temperature", "0", "--max-new-tokens", "3"]
    done = lvlm(*command, input="is the object near or far?\n/exit\n")
    assert done.returncode == 0, done.stderr
    assert f"depth {world / 'depths' / 'd016.png'}" in done.stdout and "ASSISTANT: " in done.stdout
    answer = done.stdout.split("ASSISTANT: ")[1].split("\n")[0].strip()
    assert answer  # greedy, as predict: the same answer for the same map and question
    rows = [json.loads(line) for line in (world / "predictions.jsonl").read_text().splitlines()]
    assert answer == {r["key"]: r["prediction"] for r in rows}["q16"].strip()


def test_chat_refuses_an_rgb_png_as_depth(model_dir, tmp_path):
    from PIL import Image

    Image.new("RGB", (8, 8)).save(tmp_path / "rgb.png")
    done = lvlm("chat", "--model", str(model_dir), "--media", f"depth={tmp_path / 'rgb.png'}", input="/exit\n")
    assert done.returncode == 2 and "not a 16-bit depth PNG" in done.stderr


def test_eval_generates_and_scores_depth_questions(model_dir, world):
    out = world / "eval"
    command = argv("eval", world)[1]
    assert run_command(command[0], [*command[1:], "--max-new-tokens", "3"]) == 0
    result = json.loads((out / "vqa.json").read_text())
    assert result["counts"]["scored"] == 4
    # The library's greedy answers to the same questions, scored by hand: eval must generate and score exactly these.
    session = load_session(model_dir)
    questions = json.loads((world / "questions.json").read_text())
    samples = [
        prepare_prompt(session, [{"from": "human", "value": "<depth>\n" + q["question"]}],
                       [("depth", session.load("depth", world / q["depth"]))])
        for q in questions
    ]  # fmt: skip
    expected = generate_batch(session, samples, GenerationSettings(3))
    rows = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
    generated = {row["key"]: row["prediction"] for row in rows}
    assert generated == {q["question_id"]: answer for q, answer in zip(questions, expected)}
    right = [normalize_vqa_answer(answer) == q["answer"] for q, answer in zip(questions, expected)]
    # three identical references: a right answer scores min(1, 2/3) in each of VQA's leave-one-out rounds
    assert result["metrics"]["accuracy"] == pytest.approx(sum(right) * 2 / 3 / len(right))


def test_convert_round_trips_the_plugin_model(model_dir, world):
    copy = world / "model-copy"
    command = argv("convert", world)[1]
    assert run_command(command[0], command[1:]) == 0
    original, converted = VideoLLaVA.from_pretrained(model_dir), VideoLLaVA.from_pretrained(copy)
    depth = torch.randn(1, 1, 32, 32)
    ids = torch.tensor([[1] + [original.modalities["depth"].token_id] * 16 + [5, 6]])
    with torch.no_grad():
        a = original(input_ids=ids, depths=depth).logits
        b = converted(input_ids=ids, depths=depth).logits
    assert torch.equal(a, b)


def test_a_saved_model_may_name_only_registered_classes(model_dir, tmp_path):
    import shutil

    bad = tmp_path / "bad"
    shutil.copytree(model_dir, bad)
    config = json.loads((bad / "lvlm_config.json").read_text())
    config["modality_specs"]["depth"]["class_path"] = "os.system"
    (bad / "lvlm_config.json").write_text(json.dumps(config))
    with pytest.raises(UnsafeInputError, match="modality_specs.depth.*os.system"):
        load_session(bad)


def test_depth_maps_are_16_bit_pngs(tmp_path):
    import random

    path = write_depth_png(tmp_path / "d.png", depth_map(800, random.Random(0)))
    from PIL import Image

    with Image.open(path) as image:
        assert image.mode.startswith("I") and np.asarray(image).max() == WALL_MM


def test_lvlm_never_names_the_plugin():
    assert LVLM_SOURCE.is_dir()
    pattern = "lvlm_depth|lvlm-depth|DepthModality|DepthTower"
    command = ["grep", "-rlE", "--exclude-dir=__pycache__", pattern, str(LVLM_SOURCE)]
    found = subprocess.run(command, capture_output=True, text=True)
    assert found.returncode == 1 and found.stdout == ""


def test_the_tower_names_its_own_idle_input():
    """A sharded run encodes it on a rank whose batch has no depth map: one map of the tower's channels."""
    tower = DepthTower(size=16, patch=8, width=16, layers=1, heads=2)
    assert tower.idle_pixels().shape == (1, 1, 16, 16)
    assert tower(tower.idle_pixels()).shape == (1, 4, 16)


def test_a_non_square_depth_tower_gets_maps_of_its_size_and_channels(tmp_path):
    """``Preprocessing`` declares 1 channel (one mean, one std) and ``(h, w)``; the transform and the idle input
    follow it, and a channel count the tower does not take is refused naming both."""
    import functools
    import random

    tower = functools.partial(DepthTower, size=(16, 32), patch=8, width=16, layers=1, heads=2)
    depth = DepthModality(tower).bind("depth")
    path = write_depth_png(tmp_path / "d.png", depth_map(800, random.Random(0)))
    item = depth.load(path, key="d", num_frames=1)
    assert item.shape == (1, 16, 32) and depth.tower_facts.preprocessing.shape == (1, 16, 32)
    built = tower()
    assert built.idle_pixels().shape == (1, 1, 16, 32) and built(depth.collate([item])).shape == (1, 8, 16)
    with pytest.raises(ValueError, match=r"channels=3 but its tower takes 1 channels"):
        DepthModality(tower, channels=3).bind("depth").make_transform()


def test_serve_answers_a_depth_url_part_as_the_library_does(model_dir, world):
    """``lvlm serve`` takes ``NAME_url`` parts for any modality of the model: here ``depth_url`` (a data: URL of a
    16-bit PNG), through the official openai client against a real server on 127.0.0.1."""
    import base64
    import threading
    import time

    import openai
    import uvicorn

    from lvlm.apps.serve import bind
    from lvlm.inference.batch_generate import GenerationSettings, generate_batch
    from lvlm.inference.batch_scheduler import BatchScheduler
    from lvlm.inference.prompts import prepare_prompt
    from lvlm.inference.serve_app import create_app

    session = load_session(model_dir)
    path = world / "depths" / "d000.png"
    question = "is the object near or far?"
    sample = prepare_prompt(
        session, [{"from": "human", "value": "<depth>\n" + question}], [("depth", session.load("depth", path))]
    )
    expected = generate_batch(session, [sample], GenerationSettings(3))[0]

    scheduler = BatchScheduler(session)
    sock = bind("127.0.0.1", 0)
    server = uvicorn.Server(uvicorn.Config(create_app(session, "depth", None, scheduler), log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while not server.started:
            assert time.monotonic() < deadline and thread.is_alive(), "the server did not start"
            time.sleep(0.02)
        client = openai.OpenAI(base_url=f"http://127.0.0.1:{sock.getsockname()[1]}/v1", api_key="x", max_retries=0)
        url = "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode()
        content = [{"type": "text", "text": question}, {"type": "depth_url", "depth_url": {"url": url}}]
        reply = client.chat.completions.create(
            model="depth", messages=[{"role": "user", "content": content}], max_tokens=3, temperature=0
        )
        assert reply.choices[0].message.content == expected and expected
        with pytest.raises(openai.BadRequestError, match="takes no videos"):
            video = {"type": "video_url", "video_url": {"url": url}}
            client.chat.completions.create(model="depth", messages=[{"role": "user", "content": [video]}], max_tokens=2)
    finally:
        server.should_exit = True
        thread.join(timeout=60)
