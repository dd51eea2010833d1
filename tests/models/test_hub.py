"""A local path that does not exist is never taken for a hub id: refused at once, naming it, without network."""

from __future__ import annotations

import pytest

from lvlm import VideoLLaVA
from lvlm.core.errors import UserError
from lvlm.models.io.hub import CheckpointNotFoundError, is_hub_id, resolve_checkpoint_dir
from lvlm.models.io.tokenizer import load_tokenizer
from lvlm.models.vision.clip_tower import LanguageBindImageTower

PATHS = ["./model", "~/lvlm-no-such-dir", "/no/such/dir", "runs/stage2/model", "model", "quickstart/tokenizer"]


@pytest.fixture
def unreachable_hub(monkeypatch, tmp_path):
    """Online, with the hub at an address that refuses: any hub access would end in 'not reachable'."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "quickstart").mkdir()  # what `lvlm quickstart` leaves: `quickstart/tokenizer` is a path under it


@pytest.mark.parametrize("name", PATHS)
def test_a_missing_local_path_is_refused_at_once_naming_it(unreachable_hub, name):
    assert not is_hub_id(name)
    with pytest.raises(CheckpointNotFoundError, match=rf"^{name}: no such directory$") as caught:
        resolve_checkpoint_dir(name)
    assert isinstance(caught.value, UserError) and isinstance(caught.value, FileNotFoundError)


def test_every_loader_refuses_a_missing_path_the_same_way(unreachable_hub):
    for load in (load_tokenizer, VideoLLaVA.from_pretrained, lambda p: LanguageBindImageTower(pretrained=p)):
        with pytest.raises(CheckpointNotFoundError, match=r"^quickstart/tokenizer: no such directory$"):
            load("quickstart/tokenizer")


def test_an_existing_directory_is_taken_as_it_is(unreachable_hub, tmp_path):
    (tmp_path / "quickstart" / "tokenizer").mkdir()
    assert resolve_checkpoint_dir("quickstart/tokenizer").resolve() == tmp_path / "quickstart" / "tokenizer"
    assert resolve_checkpoint_dir(tmp_path) == tmp_path


def test_an_existing_file_is_not_a_checkpoint_directory(unreachable_hub, tmp_path):
    (tmp_path / "weights.bin").write_bytes(b"")
    with pytest.raises(CheckpointNotFoundError, match=r"^weights.bin: not a directory"):
        resolve_checkpoint_dir("weights.bin")


HUB_IDS = ["LanguageBind/Video-LLaVA-7B", "lmsys/vicuna-7b-v1.5", "openai/clip-vit-large-patch14"]


@pytest.mark.parametrize("name", HUB_IDS)
def test_org_slash_name_is_a_hub_id_and_its_hint_names_hf_download(monkeypatch, tmp_path, name):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.chdir(tmp_path)
    assert is_hub_id(name)
    with pytest.raises(CheckpointNotFoundError) as caught:
        resolve_checkpoint_dir(name + "-lvlm-test-absent")
    message = str(caught.value)
    assert message.startswith(f"{name}-lvlm-test-absent: no such directory, and as a hub id offline (HF_HUB_OFFLINE=1)")
    assert f"`hf download {name}-lvlm-test-absent --local-dir DIR`" in message and "\n" not in message
    (tmp_path / name.split("/")[0]).mkdir()  # a local folder of that name: the same string is now a path
    assert not is_hub_id(name)
