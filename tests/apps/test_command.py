"""Every ``lvlm`` tool is a typed command: ``--print_config`` writes a config that ``--config`` reads back to the
same settings, dashed and underscored flags are one flag, and a mistake in a config file is one line naming the
file and the field (exit 2, no traceback, no usage block)."""

from __future__ import annotations

import pytest

from lvlm.apps.cli import TOOLS
from lvlm.apps.command import parse_command
from lvlm.apps.predict import Predict
from lvlm.apps.shards import Shards
from lvlm.core.errors import UserError
from tests.apps.cli_runner import lvlm

# One command line per tool (``run`` is ``lvlm fit -c``: LightningCLI's own --config/--print_config).
EXAMPLES = {
    "shards": ["shards", "a.json", "b.json", "--out", "o", "--image-folder", "img", "--no-progress"],
    "chat": ["chat", "--model", "m", "--image", "a.jpg", "--image", "b.jpg", "--temperature", "0"],
    "serve": ["serve", "--model", "m", "--max-tokens", "5", "--allow-remote-media", "--port", "0"],
    "eval": ["eval", "pope", "--predictions", "p.jsonl", "--out", "o", "--questions-dir", "q", "--allow-missing"],
    "merge-lora": ["merge-lora", "--checkpoint", "last.ckpt", "--out", "o", "--run-config", "config.yaml"],
    "convert": ["convert", "--model", "m", "--to", "hf", "--out", "o", "--overwrite"],
    "quickstart": ["quickstart", "--fast", "--seed", "3", "--out", "q"],
    "ablate": ["ablate", "--fast", "--cells", "random:video_only", "--seeds", "2"],
    "diagnose": ["diagnose", "--model", "m", "--shards", "a.tar", "b.tar", "--items", "8"],
    "recipes": ["recipes", "copy", "quickstart", "here", "--force"],
}
SUBCOMMANDS = {"eval", "recipes"}  # the first word after the tool picks a command of its own


def test_every_tool_has_an_example():
    assert set(EXAMPLES) == set(TOOLS) - {"run"}


@pytest.mark.parametrize("tool", sorted(EXAMPLES))
def test_print_config_round_trips_through_config(tool, tmp_path, capsys):
    code, printed = lvlm(capsys, *EXAMPLES[tool], "--print_config")
    assert code == 0 and printed.strip(), printed
    config = tmp_path / "config.yaml"
    config.write_text(printed)
    head = EXAMPLES[tool][:2] if tool in SUBCOMMANDS else EXAMPLES[tool][:1]
    code, again = lvlm(capsys, *head, "--config", config, "--print_config")
    assert code == 0 and again == printed


@pytest.mark.parametrize("tool", sorted(EXAMPLES))
def test_a_config_mistake_is_one_line_naming_the_file_and_field(tool, tmp_path, capsys):
    _, printed = lvlm(capsys, *EXAMPLES[tool], "--print_config")
    key = printed.splitlines()[0].split(":")[0]
    config = tmp_path / "bad.yaml"
    config.write_text(printed + "no_such_setting: 1\n")
    head = EXAMPLES[tool][:2] if tool in SUBCOMMANDS else EXAMPLES[tool][:1]
    code, message = lvlm(capsys, *head, "--config", config)
    assert code == 2 and message.count("\n") == 1, message
    assert str(config) in message and "no_such_setting" in message and "Traceback" not in message
    assert key  # the printed config starts with a setting


def test_a_wrong_type_in_a_config_names_the_file_and_field(tmp_path, capsys):
    config = tmp_path / "predict.yaml"
    config.write_text("model: m\nout: o.jsonl\nquestions: q.json\nbatch_size: many\n")
    code, message = lvlm(capsys, "predict", "--config", config)
    assert code == 2 and message.count("\n") == 1, message
    assert f"{config}: batch_size: expected int, got 'many'" in message


def test_flags_take_dashes_or_underscores_lone_bools_and_several_list_values():
    dashed = parse_command(Predict, ["--model", "m", "--out", "o", "--shards", "a", "b", "--no-progress"])
    underscored = parse_command(Predict, ["--model", "m", "--out", "o", "--shards", "a", "--shards", "b",
                                          "--no_progress", "true"])  # fmt: skip
    assert dashed == underscored and dashed.shards == ["a", "b"] and dashed.no_progress is True


def test_a_positional_list_and_a_config_file_agree(tmp_path):
    config = tmp_path / "shards.yaml"
    config.write_text("json_files: [a.json]\nout: o\nprefix: part\n")
    from_file = parse_command(Shards, ["--config", str(config)], positional="json_files")
    from_line = parse_command(Shards, ["a.json", "--out", "o", "--prefix", "part"], positional="json_files")
    assert from_file == from_line and from_file.json_files[0].name == "a.json"


def test_a_missing_required_flag_is_a_user_error():
    with pytest.raises(UserError, match="model"):
        parse_command(Predict, ["--out", "o"])
