"""Every command in docs/training.md and in the recipes' headers parses (`--print_config`), and launch
lines match their recipes."""

from __future__ import annotations

import re
import shlex
import subprocess
from pathlib import Path

import pytest

from tests.training.launch import REPO, print_config

DOC = Path(__file__).resolve().parents[2] / "docs" / "training.md"


def code_lines() -> list[str]:
    blocks = re.findall(r"```bash\n(.*?)```", DOC.read_text(), flags=re.S)
    return [line.strip() for block in blocks for line in block.splitlines() if line.strip()]


def recipe_header_lines() -> list[str]:
    """Commands in the recipes' header comments (`#   lvlm fit -c ...`), placeholders left out."""
    lines = []
    for path in sorted((DOC.parents[1] / "recipes").rglob("*.yaml")):
        if "quickstart" in path.parts:
            continue
        for line in path.read_text().splitlines():
            text = line.lstrip("#").split("  #")[0].strip()
            if line.startswith("#") and text.split()[:1] in (["lvlm"], ["torchrun"]) and "RECIPE" not in text:
                lines.append(text)
    return lines


def commands() -> list[str]:
    documented = [line for line in code_lines() if line.split()[0] in {"lvlm", "torchrun", "srun"}]
    return documented + recipe_header_lines()


def lvlm_args(line: str) -> list[str]:
    """The `lvlm fit` arguments of a documented command (`lvlm run R ...` is `lvlm fit -c R ...`)."""
    words = shlex.split(line)
    start = words.index("lvlm") + 1
    command, rest = words[start], words[start + 1 :]
    assert command in {"fit", "run"}, line
    return ["-c", rest[0], *rest[1:]] if command == "run" else rest


def test_the_doc_shows_commands():
    assert len(commands()) >= 20


def is_experiment_line(line: str) -> bool:
    words = shlex.split(line)
    return words[words.index("lvlm") + 1] == "run" and "recipes/ablations/" in line


@pytest.mark.parametrize("line", [line for line in commands() if is_experiment_line(line)])
def test_documented_experiment_parses_every_stage(line, tmp_path, monkeypatch, capsys):
    from lvlm.apps.fit import main

    monkeypatch.chdir(tmp_path)  # the experiment writes its overlays under ./runs
    words = shlex.split(line)
    rest = [str(REPO / a) if a.startswith("recipes/") else a for a in words[words.index("run") + 1 :]]
    assert main([*rest, "--print_config"]) == 0
    stages = 1 if "--stage" in words else 2
    assert capsys.readouterr().out.count("lvlm run: ") == stages


@pytest.mark.parametrize("line", [line for line in commands() if not is_experiment_line(line)])
def test_documented_command_parses(line):
    args = [str(REPO / a) if a.startswith("recipes/") else a for a in lvlm_args(line) if a != "--print_config"]
    config = print_config(*args)
    trainer = config["trainer"]
    if line.startswith("torchrun"):
        assert f"--nproc_per_node={trainer['devices']}" in line
    if line.startswith("srun"):
        sbatch = dict(re.findall(r"#SBATCH --([\w-]+)=(\S+)", DOC.read_text()))
        assert int(sbatch["nodes"]) == trainer["num_nodes"]
        assert int(sbatch["ntasks-per-node"]) == trainer["devices"] == int(sbatch["gres"].rsplit(":", 1)[1])
        world = trainer["num_nodes"] * trainer["devices"]
        assert trainer["strategy"]["class_path"] == "lvlm.training.strategy.FSDP2Strategy"
        assert trainer["strategy"]["init_args"]["data_parallel_size"] == "auto"  # = world
        assert world * config["data"]["init_args"]["loader"]["batch_size"] * trainer["accumulate_grad_batches"] == 128
    if "--nnodes=" in line:
        assert f"--nnodes={trainer['num_nodes']}" in line


TEMPLATE = REPO / "recipes" / "slurm" / "train.sbatch"


def sbatch_lines() -> list[str]:
    return [line for line in code_lines() if line.startswith("sbatch ")]


def test_the_slurm_template_is_valid_bash():
    subprocess.run(["bash", "-n", str(TEMPLATE)], check=True)


@pytest.mark.parametrize("line", sbatch_lines())
def test_sbatch_lines_give_the_papers_global_batch(line):
    """`sbatch [opts] recipes/slurm/train.sbatch RECIPE ARGS`: the template's `srun` line, with the variables SLURM
    sets from its #SBATCH lines, parses and keeps the stage's global batch."""
    words = shlex.split(line)
    at = words.index("recipes/slurm/train.sbatch")
    recipe, overrides = words[at + 1], words[at + 2 :]
    text = TEMPLATE.read_text()
    sbatch = dict(re.findall(r"#SBATCH --([\w-]+)=(\S+)", text))
    srun = re.search(r"^srun (.*?)$", text.replace("\\\n", " "), flags=re.M).group(1)
    srun = srun.replace('"$recipe"', recipe).replace('"$@"', shlex.join(overrides))
    srun = srun.replace('"$SLURM_JOB_NUM_NODES"', sbatch["nodes"]).replace(
        '"$SLURM_NTASKS_PER_NODE"', sbatch["ntasks-per-node"]
    )
    args = [str(REPO / a) if a.startswith("recipes/") else a for a in shlex.split(srun)[2:]]
    config = print_config(*args)
    trainer, data = config["trainer"], config["data"]["init_args"]
    assert int(sbatch["gres"].rsplit(":", 1)[1]) == int(trainer["devices"])  # the variable arrives as a string
    world = int(trainer["num_nodes"]) * int(trainer["devices"])
    expected = 256 if recipe.endswith("pretrain.yaml") else 128
    assert world * data["loader"]["batch_size"] * trainer["accumulate_grad_batches"] == expected
    assert data["sampling"]["mode"] == "single_pass"
    assert any(c["class_path"] == "lvlm.training.requeue.RequeueOnSignal" for c in trainer["callbacks"])
