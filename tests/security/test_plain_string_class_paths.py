"""A class path need not be a ``class_path`` entry to be imported: jsonargparse imports a plain string in a field
typed as a class or callable (``"projector": "somepkg.make"``) and builds what a string in an ``Any`` field holds
as YAML (``"{class_path: somepkg.Thing}"``). Every such value in a run checkpoint's hyper-parameters and in a
config given to ``--config`` is refused before jsonargparse sees it (exit 2, file and key named, the payload
module never imported); lvlm's own classes written the same ways are accepted."""

from __future__ import annotations

import copy
import sys

import pytest
import torch
import yaml

from tests.apps.cli_runner import lvlm

PAYLOAD = "lvlm_payload_{n}"
FIELDS = {
    "projector": ["parts", "projector"],
    "llm": ["parts", "llm"],
    "tower": ["parts", "modalities", "image", "init_args", "tower"],
    "modality": ["parts", "modalities", "video"],
    "lora": ["optimisation", "lora"],
    "fsdp": ["sharding", "fsdp"],
    "mixed_precision": ["sharding", "fsdp", "mixed_precision"],
    "chat_template": ["parts", "chat_template"],
    "llm_config_any": ["parts", "llm", "init_args", "config", "hidden_act"],
}
FORMS = {
    "string": "{module}.make",
    "yaml_string": "{{class_path: {module}.Thing}}",
    "class_path": {"class_path": "{module}.Thing"},
}


@pytest.fixture
def payload_module(tmp_path, monkeypatch, request):
    """A module that creates ``marker`` when imported, importable from ``sys.path``."""
    name = PAYLOAD.format(n=abs(hash(request.node.name)) % 10**8)
    (tmp_path / "pkgs").mkdir()
    marker = tmp_path / "IMPORTED"
    (tmp_path / "pkgs" / f"{name}.py").write_text(
        f"from pathlib import Path\nPath({str(marker)!r}).touch()\n"
        "class Thing: pass\ndef make(*a, **k): return Thing()\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path / "pkgs"))
    yield name, marker
    sys.modules.pop(name, None)


def _set(tree, path, value):
    tree = copy.deepcopy(tree)
    node = tree
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return tree


def _payload(form, module):
    value = FORMS[form]
    return (
        {k: v.format(module=module) for k, v in value.items()}
        if isinstance(value, dict)
        else value.format(module=module)
    )


# a plain string in an `Any` field is only a string to jsonargparse (nothing imported): the benign test has one
CASES = [(f, form) for f in sorted(FIELDS) for form in sorted(FORMS) if (f, form) != ("llm_config_any", "string")]


@pytest.mark.parametrize(("field", "form"), CASES)
def test_checkpoint_hyperparameters_are_vetted_whatever_the_form(
    field, form, run_checkpoint, payload_module, tmp_path, capsys
):
    path, _ = run_checkpoint
    module, marker = payload_module
    checkpoint = torch.load(path, weights_only=True)
    checkpoint["hyper_parameters"] = _set(checkpoint["hyper_parameters"], FIELDS[field], _payload(form, module))
    torch.save(checkpoint, tmp_path / "crafted.ckpt")
    for command in ("convert", "merge-lora"):
        code, out = lvlm(capsys, command, "--checkpoint", tmp_path / "crafted.ckpt", "--out", tmp_path / "out")
        assert code == 2 and "crafted.ckpt: hyper_parameters." in out and module in out, out
        assert not marker.exists() and module not in sys.modules and not (tmp_path / "out").exists()


@pytest.mark.parametrize("field", ["projector", "tower", "lora", "chat_template"])
def test_a_run_config_given_to_convert_is_vetted_the_same_way(field, run_checkpoint, payload_module, tmp_path, capsys):
    path, recipe = run_checkpoint
    module, marker = payload_module
    config = yaml.safe_load(recipe.read_text())
    config["model"] = _set(config["model"], FIELDS[field], f"{module}.make")
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    args = ["--checkpoint", path, "--run-config", tmp_path / "config.yaml", "--out", tmp_path / "out"]
    code, out = lvlm(capsys, "convert", *args)
    assert code == 2 and "config.yaml: model." in out and module in out, out
    assert not marker.exists() and module not in sys.modules


def test_lvlm_classes_as_plain_strings_and_plain_strings_in_any_fields_are_accepted(run_checkpoint, tmp_path, capsys):
    """The benign twins: what a user may write by hand, converted, and the model loads."""
    path, _ = run_checkpoint
    checkpoint = torch.load(path, weights_only=True)
    hparams = checkpoint["hyper_parameters"]
    hparams = _set(hparams, FIELDS["projector"], "lvlm.models.projector.MLPGeluProjector")
    hparams = _set(hparams, FIELDS["chat_template"], "lvlm.data.templates.VicunaV1")
    hparams = _set(hparams, FIELDS["llm_config_any"], "silu")
    checkpoint["hyper_parameters"] = hparams
    torch.save(checkpoint, tmp_path / "hand.ckpt")
    code, out = lvlm(capsys, "convert", "--checkpoint", tmp_path / "hand.ckpt", "--out", tmp_path / "out")
    assert code == 0, out
    from lvlm import VideoLLaVA

    assert VideoLLaVA.from_pretrained(tmp_path / "out").chat_template["class_path"] == "lvlm.data.templates.VicunaV1"
