"""Alignment diagnostics of a model: what applies per modality, and the callback in a real validation loop."""

from __future__ import annotations

import json

import pytest

from lvlm.apps.ablate_towers import write_tower_arm
from lvlm.apps.quickstart import RECIPES, write_tokenizer
from lvlm.apps.recipe_runner import lightning_main
from lvlm.data.synthetic import WorldSizes, write_synthetic_world
from lvlm.training.alignment_callback import measure_alignment
from tests.inference.conftest import checkpoint_dir, media_dir, session  # noqa: F401


def test_a_modality_without_image_counterpart_gets_norms_only(session, media_dir):  # noqa: F811
    videos = [(name, (media_dir / f"{name}.mp4").read_bytes()) for name in ("right", "other")]
    alone = {"video": session.modalities["video"]}  # as a plugin's modality in a model with no image tower
    report = measure_alignment(session.model, alone, {"video": videos}, session.num_frames)
    assert report["pairs"] == {} and "no image counterpart" in report["not_applicable"]["video"]
    assert set(report["norms"]) == {"video", "llm_embeddings"} and report["norms"]["video"]["mean"] > 0

    images = [("red", (media_dir / "red.png").read_bytes())]
    report = measure_alignment(session.model, session.modalities, {"video": videos, "image": images}, 4)
    pair = report["pairs"]["video"]
    assert pair["n"] == 2 and pair["after_projector"]["retrieval_chance"] == 0.5
    assert set(pair["before_projector"]) >= {"retrieval_a_to_b", "retrieval_b_to_a", "cka", "cka_shuffled"}
    assert set(report["norms"]) == {"video", "image", "llm_embeddings"} and not report["not_applicable"]


@pytest.mark.slow
def test_callback_logs_the_diagnostics_during_validation(tmp_path, monkeypatch):
    """A one-step `lvlm fit` of the quickstart recipe with a validation split and the callback (seconds)."""
    sizes = WorldSizes(stage1_train=0, stage2_train=8, stage2_val=6, stage2_test=0, image_size=48, video_frames=4)
    world = write_synthetic_world(tmp_path / "world", seed=1, sizes=sizes)
    write_tokenizer(tmp_path)
    write_tower_arm("random", tmp_path / "towers", sizes, steps=1, seed=0)
    monkeypatch.setenv("LVLM_QUICKSTART", str(tmp_path))
    callback = {
        "class_path": "lvlm.training.alignment_callback.AlignmentDiagnostics",
        "init_args": {"shards": [str(p) for p in world.shards["stage2/val"]], "max_items": 4, "num_frames": 4},
    }
    callback["init_args"]["json_path"] = str(tmp_path / "alignment.json")
    lightning_main(
        "fit",
        [
            "-c",
            str(RECIPES / "stage2.yaml"),
            "--model.parts.projector_checkpoint=null",
            "--trainer.max_steps=1",
            "--data.init_args.sampling.batches_per_epoch=1",
            f"--data.init_args.sources.val=[{{pattern: '{world.shards['stage2/val'][0]}'}}]",
            "--trainer.limit_val_batches=1",
            f"--trainer.callbacks={json.dumps([callback])}",
            "--trainer.enable_progress_bar=false",
        ],
    )
    report = json.loads((tmp_path / "alignment.json").read_text())
    assert report["pairs"]["video"]["n"] >= 2 and report["norms"]["llm_embeddings"]["mean"] > 0
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    (events,) = (tmp_path / "runs" / "stage2" / "tensorboard").glob("events.out.tfevents.*")
    tags = EventAccumulator(str(events)).Reload().Tags()["scalars"]
    assert "alignment/video/after_projector/retrieval_a_to_b" in tags, tags
