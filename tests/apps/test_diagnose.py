"""`lvlm diagnose` on a saved model and real shards; a wrong shard pattern is one line, no traceback."""

from __future__ import annotations

import json

import pytest
from PIL import Image

from lvlm.apps.cli import main as cli_main
from lvlm.apps.diagnose import main
from lvlm.data.synthetic import WorldSizes, write_synthetic_world


def test_diagnose_writes_json_and_plot(checkpoint_dir, tmp_path, capsys):
    sizes = WorldSizes(stage1_train=0, stage2_train=0, stage2_val=0, stage2_test=10, image_size=48, video_frames=4)
    world = write_synthetic_world(tmp_path / "world", seed=2, sizes=sizes)
    out = tmp_path / "diag"
    pattern = str(tmp_path / "world" / "stage2" / "test-*.tar")
    assert main(["--model", str(checkpoint_dir), "--shards", pattern, "--items", "4", "--out", str(out)]) == 0
    report = json.loads((out / "alignment.json").read_text())
    assert 2 <= report["pairs"]["video"]["n"] <= 4  # at most --items per modality
    assert set(report["norms"]) == {"image", "video", "llm_embeddings"}
    assert report["shards"] == [str(p) for p in world.shards["stage2/test"]]
    assert Image.open(out / "alignment.png").size[1] == 320
    assert "video vs image (after projector" in capsys.readouterr().out


def test_a_pattern_matching_nothing_is_one_line(checkpoint_dir, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        cli_main(["diagnose", "--model", str(checkpoint_dir), "--shards", str(tmp_path / "none-*.tar")])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "--shards" in err and "matches no file" in err and "Traceback" not in err
