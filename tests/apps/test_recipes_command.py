"""``lvlm recipes``: lists every packaged recipe and copies one (a file, a folder, all) out byte for byte, never over
an existing file without ``--force``."""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

import lvlm
from tests.apps.cli_runner import lvlm as run_lvlm

PACKAGED = Path(lvlm.__file__).parent / "recipes"  # the package's own folder, as the source tree holds it
REPO = PACKAGED.parents[1]
FILES = sorted(path.relative_to(PACKAGED).as_posix() for path in PACKAGED.rglob("*") if path.is_file())


def test_the_listing_names_every_packaged_file_with_its_header(capsys):
    code, out = run_lvlm(capsys, "recipes")
    assert code == 0, out
    listed = [line.split()[0] for line in out.splitlines()[1:]]
    assert listed == FILES
    assert FILES[-1] == "trainer/fsdp1.yaml" and len(FILES) == 14
    finetune = next(line for line in out.splitlines() if line.startswith("  finetune.yaml "))
    assert finetune.split(maxsplit=1)[1] == (
        "Stage 2 (instruction tuning): projector + the whole LLM learn; towers stay frozen."
    )
    sbatch = next(line for line in out.splitlines() if line.startswith("  slurm/train.sbatch "))
    assert "#!" not in sbatch and sbatch.split(maxsplit=1)[1].startswith("Video-LLaVA on SLURM:")
    assert run_lvlm(capsys, "recipes", "list") == (0, out)


def test_a_file_is_copied_to_recipes_name_byte_identical(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, out = run_lvlm(capsys, "recipes", "copy", "finetune.yaml")
    assert (code, out) == (0, "recipes/finetune.yaml\n")
    assert (tmp_path / "recipes/finetune.yaml").read_bytes() == (PACKAGED / "finetune.yaml").read_bytes()
    assert [p.name for p in tmp_path.rglob("*") if p.is_file()] == ["finetune.yaml"]


def test_a_folder_and_everything_are_copied_byte_identical(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert run_lvlm(capsys, "recipes", "copy", "quickstart", "mine")[0] == 0
    assert sorted(p.name for p in (tmp_path / "mine").iterdir()) == ["stage1.yaml", "stage2.yaml"]
    assert run_lvlm(capsys, "recipes", "copy", ".")[0] == 0
    copied = sorted(p.relative_to(tmp_path / "recipes").as_posix() for p in (tmp_path / "recipes").rglob("*"))
    assert [name for name in copied if (tmp_path / "recipes" / name).is_file()] == FILES
    for name in FILES:
        assert (tmp_path / "recipes" / name).read_bytes() == (PACKAGED / name).read_bytes(), name


def test_a_file_copied_into_an_existing_folder_keeps_its_name(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "configs").mkdir()
    assert run_lvlm(capsys, "recipes", "copy", "trainer/cpu.yaml", "configs") == (0, "configs/cpu.yaml\n")
    assert (tmp_path / "configs/cpu.yaml").read_bytes() == (PACKAGED / "trainer/cpu.yaml").read_bytes()


def test_an_existing_file_is_refused_in_one_line_then_replaced_with_force(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    mine = tmp_path / "recipes/quickstart/stage2.yaml"
    mine.parent.mkdir(parents=True)
    mine.write_text("# my edits\n")
    code, out = run_lvlm(capsys, "recipes", "copy", "quickstart")
    assert (code, out) == (2, "lvlm recipes: recipes/quickstart/stage2.yaml exists; pass --force to overwrite\n")
    assert mine.read_text() == "# my edits\n" and not (mine.parent / "stage1.yaml").exists()  # nothing written
    assert run_lvlm(capsys, "recipes", "copy", "quickstart", "--force")[0] == 0  # the benign twin
    assert mine.read_bytes() == (PACKAGED / "quickstart/stage2.yaml").read_bytes()


@pytest.mark.parametrize("name", ["nope.yaml", "../setup.cfg", "/etc/hostname"])
def test_a_name_outside_the_packaged_recipes_is_refused(capsys, tmp_path, monkeypatch, name):
    monkeypatch.chdir(tmp_path)
    code, out = run_lvlm(capsys, "recipes", "copy", name)
    assert (code, out) == (2, f"lvlm recipes: no packaged recipe {name!r}; `lvlm recipes` lists them\n")
    assert not any(tmp_path.iterdir())


def test_copied_recipes_run_as_the_docs_show(capsys, tmp_path, monkeypatch):
    """After `lvlm recipes copy .`, the docs' `lvlm fit -c recipes/...` command parses from that folder."""
    monkeypatch.chdir(tmp_path)
    assert run_lvlm(capsys, "recipes", "copy", ".")[0] == 0
    code, out = run_lvlm(
        capsys, "fit", "-c", "recipes/finetune.yaml", "-c", "recipes/trainer/cpu.yaml", "--print_config"
    )
    assert code == 0, out
    assert "lmsys/vicuna-7b-v1.5" in out


def documented() -> list[str]:
    """The ``lvlm recipes ...`` commands README.md and docs/ show (placeholders such as NAME left out)."""
    texts = [(REPO / "README.md").read_text(), *(path.read_text() for path in sorted((REPO / "docs").glob("*.md")))]
    found = {m for text in texts for m in re.findall(r"`(lvlm recipes[^`]*)`", text) if not re.search(r"[A-Z]", m)}
    return sorted(found)


def test_the_docs_show_the_listing_and_copies():
    assert {"lvlm recipes", "lvlm recipes copy .", "lvlm recipes copy finetune.yaml"} <= set(documented())


@pytest.mark.parametrize("line", documented())
def test_every_documented_command_runs(capsys, tmp_path, monkeypatch, line):
    monkeypatch.chdir(tmp_path)
    code, out = run_lvlm(capsys, *shlex.split(line)[1:])
    assert code == 0, out


def test_a_reader_that_goes_away_gets_no_traceback():
    """`lvlm recipes | head -1`: the listing stops quietly when its reader closes the pipe."""
    shell = f"{shutil.which('lvlm')} recipes | head -1"
    done = subprocess.run(["bash", "-o", "pipefail", "-c", shell], capture_output=True, text=True, timeout=120)
    assert done.stdout.startswith("Recipes packaged with lvlm"), done.stdout
    assert "Traceback" not in done.stderr and done.returncode in (0, 141), done.stderr
