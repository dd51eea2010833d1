"""Every recipe in recipes/ (and every overlay on its base) parses through `lvlm fit ... --print_config`.

Parsing only: nothing is instantiated, no weights are read. The paper's numbers are checked on the
resolved configs (spec §5.1).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tests.training.launch import print_config

RECIPES = Path(__file__).resolve().parents[2] / "recipes"
STAGES = ["pretrain.yaml", "finetune.yaml", "finetune_lora.yaml"]
TRAINERS = ["trainer/fsdp.yaml", "trainer/fsdp1.yaml", "trainer/cpu.yaml"]
ABLATIONS = {
    "ablations/mae_image_tower.yaml": "pretrain.yaml",
    "ablations/separated_clip.yaml": "finetune.yaml",
    "ablations/video_only_pretrain.yaml": "pretrain.yaml",
    "ablations/video_only_finetune.yaml": "finetune.yaml",
    "ablations/image_only_pretrain.yaml": "pretrain.yaml",
    "ablations/image_only_finetune.yaml": "finetune.yaml",
}


def resolved(*files: str) -> dict:
    """The config `lvlm fit -c F1 -c F2 ... --print_config` prints."""
    return print_config(*[arg for f in files for arg in ("-c", str(RECIPES / f))])


def test_every_recipe_is_covered():
    found = {str(p.relative_to(RECIPES)) for p in RECIPES.rglob("*.yaml") if "quickstart" not in p.parts}
    assert found == set(STAGES) | set(TRAINERS) | set(ABLATIONS)


def test_every_recipe_starts_with_the_command_that_runs_it():
    for path in RECIPES.rglob("*.yaml"):
        if "quickstart" in path.parts:
            continue
        header = [line for line in path.read_text().splitlines() if line.startswith("#")]
        assert any("lvlm fit -c " in line for line in header), path


@pytest.mark.parametrize("stage", STAGES)
@pytest.mark.parametrize("trainer", [None, *TRAINERS])
def test_stage_recipes_parse(stage, trainer):
    config = resolved(stage, *([trainer] if trainer else []))
    model, data, trainer_cfg = config["model"], config["data"]["init_args"], config["trainer"]
    assert model["towers"]["image"]["init_args"]["path_or_hub_id"] == "LanguageBind/LanguageBind_Image"
    assert model["towers"]["video"]["init_args"]["path_or_hub_id"] == "LanguageBind/LanguageBind_Video_merge"
    assert model["llm"]["init_args"]["pretrained"] == "lmsys/vicuna-7b-v1.5"
    assert model["projector"] == "mlp2x_gelu" and model["chat_template"] == data["template"] == "vicuna_v1"
    assert (model["weight_decay"], model["warmup_ratio"]) == (0.0, 0.03)
    assert data["sampling"] == "single_pass" and data["samples_per_epoch"] is None  # the paper's one pass
    assert model["activation_checkpointing"] is (trainer != "trainer/fsdp1.yaml")
    global_batch = trainer_cfg["devices"] * trainer_cfg["num_nodes"] * data["batch_size"]
    global_batch *= trainer_cfg["accumulate_grad_batches"]
    if trainer == "trainer/cpu.yaml":  # one CPU process: the global batch is not the paper's there
        global_batch = {"pretrain.yaml": 256}.get(stage, 128)
    if stage == "pretrain.yaml":
        assert (model["lr"], global_batch, model["image_mode"]) == (1e-3, 256, "crop")
        assert model["train_projector"] and not model["train_llm"] and model["projector_checkpoint"] is None
    else:
        assert (global_batch, model["image_mode"], data["group_by_modality_length"]) == (128, "pad", True)
        assert model["projector_checkpoint"] == "runs/videollava-7b-pretrain/projector.safetensors"
    if stage == "finetune.yaml":
        assert model["lr"] == 2e-5 and model["train_llm"] and model["lora"] is None
    if stage == "finetune_lora.yaml":
        assert (model["lr"], model["projector_lr"], model["train_llm"]) == (2e-4, 2e-5, False)
        assert {k: model["lora"][k] for k in ("r", "alpha", "dropout")} == {"r": 128, "alpha": 256, "dropout": 0.05}
    if trainer == "trainer/fsdp.yaml":
        strategy = trainer_cfg["strategy"]["init_args"]
        assert (strategy["tensor_parallel_size"], strategy["data_parallel_size"]) == (1, "auto")  # = world size
        assert model["fsdp"]["mixed_precision"] == {"param_dtype": "bfloat16", "reduce_dtype": "float32"}


@pytest.mark.parametrize("overlay", sorted(ABLATIONS))
def test_ablation_overlays_change_only_what_they_name(overlay):
    base = resolved(ABLATIONS[overlay], "trainer/fsdp.yaml")
    config = resolved(ABLATIONS[overlay], overlay, "trainer/fsdp.yaml")
    named = yaml.safe_load((RECIPES / overlay).read_text())
    assert config["trainer"] == base["trainer"]
    for key in set(base["model"]) - set(named["model"]):
        assert config["model"][key] == base["model"][key], key
    towers = named["model"].get("towers", {})
    for name in ("image", "video"):
        expected = towers[name] if name in towers else base["model"]["towers"][name]
        assert config["model"]["towers"][name] == expected
    if "data" not in named:
        assert config["data"] == base["data"]
