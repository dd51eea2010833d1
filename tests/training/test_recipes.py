"""Every recipe in recipes/ parses through `lvlm fit ... --print_config`; each ablation is one command.

Parsing only: nothing is instantiated, no weights are read. The paper's numbers are checked on the
resolved configs (the paper's two stages).
"""

from __future__ import annotations

import contextlib
import io

import pytest
import yaml

from lvlm.core.errors import UserError
from lvlm.core.recipes import recipes_root
from tests.training.launch import print_config

RECIPES = recipes_root()  # the packaged recipes (lvlm/recipes)
STAGES = ["pretrain.yaml", "finetune.yaml", "finetune_lora.yaml"]
TRAINERS = ["trainer/fsdp.yaml", "trainer/fsdp1.yaml", "trainer/cpu.yaml"]
EXPERIMENTS = ["joint", "separated_mae", "separated_clip", "image_only", "video_only"]
IMAGE_TOWER = "lvlm.models.vision.clip_tower.LanguageBindImageTower"


def resolved(*files: str) -> dict:
    """The config `lvlm fit -c F1 -c F2 ... --print_config` prints."""
    return print_config(*[arg for f in files for arg in ("-c", str(RECIPES / f))])


def tower(model: dict, name: str) -> dict:
    return model["parts"]["modalities"][name]["init_args"]["tower"]


def test_every_recipe_is_covered():
    found = {str(p.relative_to(RECIPES)) for p in RECIPES.rglob("*.yaml") if "quickstart" not in p.parts}
    assert found == set(STAGES) | set(TRAINERS) | {f"ablations/{name}.yaml" for name in EXPERIMENTS}


def test_every_recipe_starts_with_the_command_that_runs_it():
    for path in RECIPES.rglob("*.yaml"):
        if "quickstart" in path.parts:
            continue
        header = [line for line in path.read_text().splitlines() if line.startswith("#")]
        command = "lvlm run recipes/ablations/" if "ablations" in path.parts else "lvlm fit -c "
        assert any(command in line for line in header), path


@pytest.mark.parametrize("stage", STAGES)
@pytest.mark.parametrize("trainer", [None, *TRAINERS])
def test_stage_recipes_parse(stage, trainer):
    config = resolved(stage, *([trainer] if trainer else []))
    model, data, trainer_cfg = config["model"], config["data"]["init_args"], config["trainer"]
    assert tower(model, "image")["class_path"] == IMAGE_TOWER
    assert tower(model, "image")["init_args"]["pretrained"] == "LanguageBind/LanguageBind_Image"
    assert tower(model, "video")["init_args"]["pretrained"] == "LanguageBind/LanguageBind_Video_merge"
    assert model["parts"]["llm"]["init_args"]["pretrained"] == "lmsys/vicuna-7b-v1.5"
    assert model["parts"]["projector"]["class_path"] == "lvlm.models.projector.MLPGeluProjector"
    assert model["parts"]["projector"]["init_args"] == {"depth": 2}  # defaults are printed
    assert model["parts"]["chat_template"]["class_path"] == "lvlm.data.templates.VicunaV1"
    optimizer, schedule = model["optimisation"]["optimizer"], model["optimisation"]["lr_scheduler"]
    assert optimizer["class_path"] == "torch.optim.AdamW" and optimizer["init_args"]["weight_decay"] == 0.0
    assert schedule["class_path"] == "lvlm.training.optim.WarmupCosineLR"
    assert schedule["init_args"]["warmup_ratio"] == 0.03
    assert (
        data["sampling"]["mode"] == "single_pass" and data["sampling"]["samples_per_epoch"] is None
    )  # the paper's one pass
    assert model["sharding"]["activation_checkpointing"] is (trainer != "trainer/fsdp1.yaml")
    global_batch = trainer_cfg["devices"] * trainer_cfg["num_nodes"] * data["loader"]["batch_size"]
    global_batch *= trainer_cfg["accumulate_grad_batches"]
    if trainer == "trainer/cpu.yaml":  # one CPU process: the global batch is not the paper's there
        global_batch = {"pretrain.yaml": 256}.get(stage, 128)
    image_mode = model["parts"]["modalities"]["image"]["init_args"]["image_mode"]
    if stage == "pretrain.yaml":
        assert (optimizer["init_args"]["lr"], global_batch, image_mode) == (1e-3, 256, "crop")
        assert (
            model["optimisation"]["train_projector"]
            and not model["optimisation"]["train_llm"]
            and model["parts"]["projector_checkpoint"] is None
        )
    else:
        assert (global_batch, image_mode, data["sampling"]["group_by_modality_length"]) == (128, "pad", True)
        assert model["parts"]["projector_checkpoint"] == "runs/videollava-7b-pretrain/projector.safetensors"
    if stage == "finetune.yaml":
        assert (
            optimizer["init_args"]["lr"] == 2e-5
            and model["optimisation"]["train_llm"]
            and model["optimisation"]["lora"] is None
        )
    if stage == "finetune_lora.yaml":
        assert (
            optimizer["init_args"]["lr"],
            model["optimisation"]["projector_lr"],
            model["optimisation"]["train_llm"],
        ) == (2e-4, 2e-5, False)
        assert {k: model["optimisation"]["lora"][k] for k in ("r", "alpha", "dropout")} == {
            "r": 128,
            "alpha": 256,
            "dropout": 0.05,
        }
    if trainer == "trainer/fsdp.yaml":
        strategy = trainer_cfg["strategy"]["init_args"]
        assert (strategy["tensor_parallel_size"], strategy["data_parallel_size"]) == (1, "auto")  # = world size
        precision = model["sharding"]["fsdp"]["mixed_precision"]
        assert (precision["param_dtype"], precision["reduce_dtype"]) == ("bfloat16", "float32")


def test_partial_overrides_at_any_depth_from_the_command_line():
    config = print_config(
        "-c", str(RECIPES / "finetune.yaml"),
        "--model.parts.llm.init_args.pretrained", "/weights/vicuna-7b-v1.5",
        "--model.parts.modalities.video.init_args.tower.init_args.pretrained", "/weights/video",
        "--optimizer.lr", "3e-5",
        "--model.sharding.fsdp.mixed_precision.param_dtype", "float16",
    )  # fmt: skip
    model = config["model"]
    assert model["parts"]["llm"]["init_args"]["pretrained"] == "/weights/vicuna-7b-v1.5"
    assert model["parts"]["llm"]["init_args"]["torch_dtype"] == "float32"  # the rest of the block is kept
    assert tower(model, "video")["init_args"]["pretrained"] == "/weights/video"
    assert tower(model, "video")["init_args"]["select_feature"] == "cls_patch"
    assert tower(model, "image")["init_args"]["pretrained"] == "LanguageBind/LanguageBind_Image"
    assert (
        model["optimisation"]["optimizer"]["init_args"]["lr"] == 3e-5
        and model["optimisation"]["optimizer"]["init_args"]["weight_decay"] == 0.0
    )
    assert model["sharding"]["fsdp"]["mixed_precision"]["param_dtype"] == "float16"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--model.parts.llm.init_args.pretraned", "x"], "model.parts.llm.init_args.pretraned: unknown key"),
        (
            ["--model.parts.modalities.video.init_args.tower.init_args.selct_layer", "1"],
            "model.parts.modalities.video.init_args.tower.init_args.selct_layer: unknown key",
        ),
        (
            ["--model.sharding.fsdp.mixed_precision.param_dtyp", "bfloat16"],
            "model.sharding.fsdp.mixed_precision.param_dtyp: unknown key",
        ),
        (
            ["--model.sharding.fsdp.mixed_precision.param_dtype", "bf16"],
            "model.sharding.fsdp.mixed_precision.param_dtype: expected one of 'float32', 'bfloat16', 'float16', "
            "got 'bf16'",
        ),
        (
            ["--model.sharding.fsdp.reshard_after_forward", "1"],
            "model.sharding.fsdp.reshard_after_forward: expected bool, got '1'",
        ),
        (["--model.optimisation.lora.rank", "8"], "model.optimisation.lora.rank: unknown key"),
        (
            ["--optimizer", "torch.optim.NoSuchOptimizer"],
            "model.optimisation.optimizer: no class 'NoSuchOptimizer' in module",
        ),
        (["--data.init_args.sources.train", '[{"patern": "x"}]'], "data.init_args.sources.train.0.patern: unknown"),
        (["--data.init_args.sampling.mode", "shuffled"], "data.init_args.sampling.mode: expected one of 'resampled'"),
    ],
)
def test_unknown_keys_and_wrong_types_fail_before_anything_is_built(args, message):
    from lvlm.apps.recipe_runner import lightning_main

    recipe = ["-c", str(RECIPES / "finetune_lora.yaml"), "-c", str(RECIPES / "trainer/fsdp.yaml")]
    with pytest.raises(UserError) as refused:
        lightning_main("fit", [*recipe, *args, "--print_config"])
    assert str(refused.value).startswith("command line: " + message), refused.value


def experiment_configs(name: str) -> dict[str, dict]:
    """``{stage: config}`` of ``lvlm run recipes/ablations/NAME.yaml -c recipes/trainer/fsdp.yaml --print_config``."""
    from lvlm.apps.fit import main

    out = io.StringIO()
    experiment = str(RECIPES / "ablations" / f"{name}.yaml")
    with contextlib.redirect_stdout(out):
        assert main([experiment, "-c", str(RECIPES / "trainer/fsdp.yaml"), "--print_config"]) == 0
    configs = {}
    for chunk in out.getvalue().split("lvlm run: ")[1:]:
        header, _, body = chunk.partition("\n")
        configs[header.split("'")[1]] = yaml.safe_load(body)
    return configs


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_each_ablation_is_one_command_with_its_own_runs(name, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # overlay files go under ./runs
    configs = experiment_configs(name)
    assert list(configs) == ["pretrain", "finetune"]
    run = f"runs/ablation-{name.replace('_', '-')}"
    pretrain, finetune = configs["pretrain"], configs["finetune"]
    for stage, config in configs.items():
        assert config["trainer"]["default_root_dir"] == f"{run}/{stage}"
        assert config["trainer"]["logger"]["init_args"]["save_dir"] == run
        assert config["trainer"]["logger"]["init_args"]["name"] == stage
        assert config["trainer"]["strategy"]["class_path"].endswith("FSDP2Strategy")  # the -c given after
    assert pretrain["model"]["export"]["projector"] == f"{run}/pretrain/projector.safetensors"
    assert finetune["model"]["parts"]["projector_checkpoint"] == f"{run}/pretrain/projector.safetensors"
    assert pretrain["model"]["export"]["dir"] is None and finetune["model"]["export"]["dir"] == f"{run}/model"
    assert finetune["model"]["optimisation"]["train_llm"] and not pretrain["model"]["optimisation"]["train_llm"]
    for config in configs.values():
        model = config["model"]
        if name == "separated_mae":
            assert tower(model, "image")["class_path"] == "lvlm.models.vision.timm_tower.TimmVisionTower"
            assert tower(model, "image")["init_args"]["model_name"] == "vit_large_patch16_224.mae"
        elif name == "separated_clip":
            assert tower(model, "image")["class_path"] == "lvlm.models.vision.clip_tower.CLIPVisionTower"
            assert tower(model, "image")["init_args"]["pretrained"] == "openai/clip-vit-large-patch14"
        elif name != "joint":
            assert model["parts"]["modalities"]["video" if name == "image_only" else "image"] is None
        if name in ("joint", "separated_mae", "separated_clip"):
            assert tower(model, "video")["init_args"]["pretrained"] == "LanguageBind/LanguageBind_Video_merge"
    if name == "image_only":
        sources = [s["pattern"].split("/")[-2] for s in pretrain["data"]["init_args"]["sources"]["train"]]
        assert sources == ["llava_image"]


def test_the_modalities_overlay_leaves_no_file_behind(tmp_path, monkeypatch):
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.setattr("tempfile.tempdir", None)  # TMPDIR is read again
    config = print_config(
        "-c", str(RECIPES / "finetune.yaml"),
        "--model.parts.modalities.image.init_args.tower.init_args.pretrained", "/weights/image",
    )  # fmt: skip
    assert tower(config["model"], "image")["init_args"]["pretrained"] == "/weights/image"
    assert list(tmp_path.iterdir()) == []
