"""`lvlm quickstart`: the pieces (world questions, tower save/load, recipes) and one fast end-to-end run."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from lvlm.apps.quickstart import FRAMES, PLANS, RECIPES, TOWER, check_recipes, main, world_sizes
from lvlm.apps.quickstart_eval import test_questions as questions_of
from lvlm.apps.quickstart_towers import WarmupSettings, save_languagebind_tower, warm_up_towers
from lvlm.apps.recipe_runner import lightning_main
from lvlm.data.synthetic import write_synthetic_world
from lvlm.data.synthetic_render import render_image
from lvlm.models.checkpoints.languagebind import load_languagebind_tower
from lvlm.models.vision.clip_tower import LanguageBindImageTower, LanguageBindVideoTower


def test_steps_scale_scales_only_steps():
    plan = PLANS["full"].scaled(0.5)
    assert plan.stage2_steps == PLANS["full"].stage2_steps // 2 and plan.stage2_train == PLANS["full"].stage2_train
    assert PLANS["fast"].scaled(1e-6).stage1_steps == 1


def test_every_test_question_is_asked_with_its_history(tmp_path):
    sizes = {
        "stage1_train": 2,
        "stage2_train": 2,
        "stage2_val": 2,
        "stage2_test": 6,
        "image_size": 48,
        "video_frames": 4,
    }
    world = write_synthetic_world(tmp_path, seed=3, sizes=sizes)
    asked = list(questions_of(world.shards["stage2/test"]))
    assert len({q.key for q in asked}) == len(asked) and len(asked) >= 12  # 2-3 questions per sample
    for q in asked:
        i = int(q.key.rsplit("/q", 1)[1])
        assert len(q.conversations) == 2 * i + 1 and q.conversations[-1]["from"] == "human"
        assert q.meta["modality"] in ("image", "video") and q.answer in q.meta["choices"]
        assert [kind for kind, _ in q.media] == [q.meta["modality"]]
        assert "<" not in q.question


def test_warmed_up_towers_load_back_with_the_languagebind_loader(tmp_path):
    torch.manual_seed(0)
    image = LanguageBindImageTower(TOWER, select_layer=-1, select_feature="patch")
    video = LanguageBindVideoTower(TOWER, select_layer=-1, select_feature="cls_patch", num_frames=FRAMES)
    stats = warm_up_towers(image, video, world_sizes(PLANS["fast"]), WarmupSettings(steps=2, batch_size=4))
    assert set(stats) >= {"loss", "direction_accuracy", "cell_color_accuracy"}
    assert image.frozen and not any(p.requires_grad for p in video.parameters())
    pixels = torch.randn(2, FRAMES, 3, 48, 48)
    for tower, modality, x in ((image, "image", pixels[:, 0]), (video, "video", pixels)):
        loaded = load_languagebind_tower(
            save_languagebind_tower(tower, tmp_path / modality),
            modality=modality,
            select_layer=-1,
            select_feature=tower.select_feature,
        )
        assert type(loaded) is type(tower) and loaded.frozen
        torch.testing.assert_close(loaded(x), tower(x), rtol=0, atol=0)


def _warmed_up_towers(seed: int) -> dict[str, torch.Tensor]:
    torch.manual_seed(seed)  # as write_towers does
    image = LanguageBindImageTower(TOWER, select_layer=-1, select_feature="patch")
    video = LanguageBindVideoTower(TOWER, select_layer=-1, select_feature="cls_patch", num_frames=FRAMES)
    warm_up_towers(image, video, world_sizes(PLANS["fast"]), WarmupSettings(steps=3, batch_size=4, seed=seed))
    towers = {"image": image, "video": video}
    return {f"{kind}.{k}": v for kind, tower in towers.items() for k, v in tower.state_dict().items()}


def test_the_same_seed_warms_up_the_same_towers():
    first, again, other = _warmed_up_towers(0), _warmed_up_towers(0), _warmed_up_towers(1)
    assert first.keys() == again.keys() == other.keys()
    assert all(torch.equal(first[k], again[k]) for k in first)
    assert not all(torch.equal(first[k], other[k]) for k in first)


@pytest.mark.parametrize("stage", ["stage1.yaml", "stage2.yaml"])
def test_quickstart_recipes_parse(stage, capsys, monkeypatch, tmp_path):
    monkeypatch.setenv("LVLM_QUICKSTART", str(tmp_path))
    with pytest.raises(SystemExit) as exit_info:
        lightning_main("fit", ["-c", str(RECIPES / stage), "--print_config"])
    assert exit_info.value.code in (0, None)
    config = yaml.safe_load(capsys.readouterr().out)
    parts, optimisation = config["model"]["parts"], config["model"]["optimisation"]
    assert parts["tokenizer"] == f"{tmp_path}/tokenizer" and optimisation["train_vision"] is False
    trains = (optimisation["train_llm"], optimisation["train_projector"])
    assert trains == ((False, True) if stage == "stage1.yaml" else (True, True))
    video_tower = parts["modalities"]["video"]["init_args"]["tower"]
    assert video_tower["init_args"]["pretrained"] == f"{tmp_path}/towers/video"


@pytest.mark.slow
def test_fast_quickstart_learns_colour_and_motion(tmp_path, capsys):
    """The only long test (a few minutes on 2 cores): the whole quickstart in --fast mode."""
    assert main(["--out", str(tmp_path), "--fast"]) == 0
    printed = capsys.readouterr().out
    assert "question_type" in printed and "reference:" in printed
    rows = {(r["question_type"], r["modality"]): r for r in json.loads((tmp_path / "results.json").read_text())["rows"]}
    for key in (("direction", "video"), ("color", "image"), ("color", "video")):
        assert rows[key]["accuracy"] >= 2 * rows[key]["chance"], (key, rows[key])
    for stage in ("stage1", "stage2"):  # each stage logs to TensorBoard and saves its resolved config there
        logs = tmp_path / "runs" / stage / "tensorboard"
        assert list(logs.glob("events.out.tfevents.*")) and (logs / "config.yaml").is_file(), sorted(logs.iterdir())

    from lvlm.inference.predict import answer
    from lvlm.inference.session import load_session

    render_image({"objects": [["red", "circle", 4]]}, 48).save(tmp_path / "red_circle.png")
    reply = answer(load_session(tmp_path / "model"), "What color is the circle?", [tmp_path / "red_circle.png"])
    assert isinstance(reply, str) and reply.strip()


def test_missing_recipes_are_refused_before_any_work(tmp_path):
    empty, out = tmp_path / "recipes", tmp_path / "out"
    empty.mkdir()
    (empty / "stage1.yaml").write_text((RECIPES / "stage1.yaml").read_text())
    lvlm = str(Path(sys.executable).with_name("lvlm"))
    done = subprocess.run(
        [lvlm, "quickstart", "--recipes", str(empty), "--out", str(out)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 2
    assert done.stderr == (
        f"lvlm quickstart: --recipes {empty}: no stage2.yaml; leave --recipes out for the packaged ones, "
        "or write them there with `lvlm recipes copy quickstart FOLDER`\n"
    )
    assert not out.exists()  # nothing written
    check_recipes(RECIPES)  # the benign twin: the packaged recipes are all there
