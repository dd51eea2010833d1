"""Stage-1 projector export and stage-2 import, including the original's mm_projector.bin."""

from __future__ import annotations

import pytest
import torch

from lvlm.models.projector import LinearProjector, MLPGeluProjector, Projector
from lvlm.training.projector_io import full_state_dict, load_projector, read_projector, save_projector


def projector(seed: int) -> Projector:
    torch.manual_seed(seed)
    return MLPGeluProjector(32, 48)


def test_safetensors_round_trip_is_exact(tmp_path):
    source, target = projector(0), projector(1)
    path = save_projector(full_state_dict(source), tmp_path / "projector.safetensors")
    assert sorted(read_projector(path)) == ["0.bias", "0.weight", "2.bias", "2.weight"]
    load_projector(target, path)
    for key, value in source.state_dict().items():
        assert torch.equal(target.state_dict()[key], value)


def test_original_mm_projector_bin_is_read(tmp_path):
    source, target = projector(0), projector(1)
    original = {f"model.mm_projector.{k}": v.to(torch.bfloat16) for k, v in source.state_dict().items()}
    torch.save(original, tmp_path / "mm_projector.bin")
    load_projector(target, tmp_path / "mm_projector.bin")
    for key, value in source.state_dict().items():
        assert torch.equal(target.state_dict()[key], value.to(torch.bfloat16).float())


def test_missing_file_names_the_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere.safetensors"):
        load_projector(projector(0), tmp_path / "nowhere.safetensors")


def test_shape_mismatch_names_the_path(tmp_path):
    path = save_projector(full_state_dict(LinearProjector(32, 48)), tmp_path / "linear.safetensors")
    with pytest.raises(ValueError, match="linear.safetensors"):
        load_projector(projector(0), path)


def test_the_same_projector_gives_the_same_bytes_in_every_process(tmp_path):
    """safetensors orders metadata keys differently per process: the file holds one, so runs compare by bytes."""
    import subprocess
    import sys

    script = (
        "import sys, torch\nfrom lvlm.training.projector_io import save_projector\n"
        "save_projector({'0.weight': torch.ones(3, 2), '0.bias': torch.zeros(3)}, sys.argv[1])\n"
    )
    files = [tmp_path / f"p{i}.safetensors" for i in range(4)]
    for path in files:
        subprocess.run([sys.executable, "-c", script, str(path)], check=True, timeout=120)
    assert len({path.read_bytes() for path in files}) == 1
