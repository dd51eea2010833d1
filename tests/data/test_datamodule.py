"""LVLMDataModule on real shards: batch format, bad samples skipped and reported, grouping, prediction, resume."""

from __future__ import annotations

from pathlib import Path

import fsspec
import lightning.pytorch as pl
import pytest
import torch
from shard_fixtures import BAD_SAMPLES, bad_samples, good_samples, make_datamodule, write_shards
from tokenizer_fixtures import tiny_tokenizer

from lvlm.data.report import read_bad_samples
from lvlm.data.shard_io import expand_pattern
from lvlm.data.templates import vicuna_v1
from lvlm.data.transforms import normalize_pixels

TOK = tiny_tokenizer()
IMG, VID = TOK.convert_tokens_to_ids("<image>"), TOK.convert_tokens_to_ids("<video>")


@pytest.fixture(scope="module")
def shards(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("shards")
    bad = bad_samples()
    return {
        "mixed": write_shards(root, "mixed", [good_samples("a", 7) + bad[:5], bad[5:] + good_samples("b", 3)]),
        "good": write_shards(root, "good", [good_samples("g", 6), good_samples("h", 4)]),
        "text": write_shards(root, "text", [good_samples("t", 3)[2:] * 1]),
    }


def test_validation_batches_have_the_contract_format(shards, tmp_path: Path) -> None:
    dm = make_datamodule(tmp_path, sources={"val": [{"pattern": shards["good"]}]})
    batches = list(dm.val_dataloader())
    assert [b["keys"] for b in batches] == [
        ["g0000", "g0001"], ["g0002", "g0003"], ["g0004", "g0005"], ["h0000", "h0001"], ["h0002", "h0003"]
    ]  # fmt: skip
    first = batches[0]
    assert first["modalities"] == ["image", "video"]
    assert first["images"].shape == (1, 3, 16, 16) and first["images"].dtype == torch.uint8  # towers normalise
    assert first["videos"].shape == (1, 4, 3, 16, 16) and first["videos"].dtype == torch.uint8
    as_float = list(
        make_datamodule(
            tmp_path, sources={"val": [{"pattern": shards["good"]}]}, media={"dtype": "float32"}
        ).val_dataloader()
    )
    towers = {m.name: m.tower_facts.preprocessing for m in make_datamodule(tmp_path).modalities}
    for name, kind in (("images", "image"), ("videos", "video")):
        mean, std = torch.tensor(towers[kind].mean), torch.tensor(towers[kind].std)
        assert as_float[0][name].dtype == torch.float32
        assert torch.equal(as_float[0][name], normalize_pixels(first[name], mean, std))
    assert first["input_ids"].shape == first["attention_mask"].shape == first["labels"].shape
    assert (first["input_ids"][0] == IMG).sum() == 4 and (first["input_ids"][1] == VID).sum() == 4 * 3
    text_row = batches[1]["keys"].index("g0002")
    assert batches[1]["modalities"][text_row] == "text"
    assert batches[1]["images"].shape[0] == 1 and batches[1]["videos"].shape[0] == 1  # only g0003's media
    assert first["meta"][0]["reference"] == "red 0" and first["meta"][1]["key"] == "g0001"
    lengths = first["attention_mask"].sum(1)
    assert (first["input_ids"][0, lengths[0] :] == TOK.pad_token_id).all()  # right padding
    assert first["labels"][0, lengths[0] - 1].item() == TOK.eos_token_id


def test_every_bad_sample_is_skipped_and_reported_with_its_reason(shards, tmp_path: Path) -> None:
    dm = make_datamodule(tmp_path, sources={"val": [{"pattern": shards["mixed"]}]})
    keys = [k for batch in dm.val_dataloader() for k in batch["keys"]]
    good = [s["__key__"] for s in good_samples("a", 7) + good_samples("b", 3)]
    assert keys == good
    report = {entry["key"]: entry for entry in read_bad_samples(tmp_path)}
    assert {key: entry["reason"] for key, entry in report.items()} == {
        f"bad_{name}": reason for name, (_, reason) in BAD_SAMPLES.items()
    }
    assert all(
        entry["split"] == "val" and entry["url"].endswith(".tar") and entry["detail"] for entry in report.values()
    )
    assert dm.bad_sample_counts("val") == {"undecodable_video": 3, "bad_json": 2, "undecodable_image": 1,
                                           "missing_media": 1, "placeholder_mismatch": 1, "too_long": 1}  # fmt: skip


def test_training_stream_skips_bad_samples_and_yields_exactly_the_epoch(shards, tmp_path: Path) -> None:
    dm = make_datamodule(
        tmp_path, sources={"train": [{"pattern": shards["mixed"]}]}, sampling={"batches_per_epoch": 12}
    )
    loader = dm.train_dataloader()
    batches = list(loader)
    assert len(batches) == len(loader) == 12
    seen = {k for b in batches for k in b["keys"]}
    assert seen and not any(k.startswith("bad_") for k in seen)
    assert all(1 <= len(b["keys"]) <= 2 for b in batches)
    reported = read_bad_samples(tmp_path, "train")
    assert reported and all(e["key"].startswith("bad_") for e in reported)
    assert all(e["reason"] == BAD_SAMPLES[e["key"][4:]][1] for e in reported)
    assert len(list(loader)) == 12  # the next epoch runs too


def test_weighted_mixing_follows_the_weights(shards, tmp_path: Path) -> None:
    dm = make_datamodule(
        tmp_path,
        sources={"train": [{"pattern": shards["good"], "weight": 1.0}, {"pattern": shards["text"], "weight": 3.0}]},
        sampling={"batches_per_epoch": 40},
        loader={"batch_size": 2},
    )
    keys = [k for b in dm.train_dataloader() for k in b["keys"]]
    share = sum(k.startswith("t") for k in keys) / len(keys)
    assert 0.6 < share < 0.9  # 3:1 in expectation (0.75); seed fixed, so this is deterministic


def test_modality_length_grouping_keeps_text_only_and_multimodal_apart(shards, tmp_path: Path) -> None:
    dm = make_datamodule(
        tmp_path,
        sources={"train": [{"pattern": shards["good"]}]},
        sampling={"group_by_modality_length": True, "batches_per_epoch": 10},
    )
    for batch in dm.train_dataloader():
        text = [m == "text" for m in batch["modalities"]]
        assert all(text) or not any(text)


def test_predict_batches_are_left_padded_prompts_with_references(shards, tmp_path: Path) -> None:
    dm = make_datamodule(tmp_path, sources={"val": [{"pattern": shards["good"]}]})
    batch = next(iter(dm.predict_dataloader()))
    assert "labels" not in batch and batch["keys"] == ["g0000", "g0001"]
    assert [m["reference"] for m in batch["meta"]] == ["red 0", "left 1"]
    first = batch["input_ids"][0][batch["attention_mask"][0].bool()]
    prompt = vicuna_v1.generation_prompt([("human", "<image>\nwhat colour?")])
    before, after = prompt.split("<image>")
    ids = [TOK.bos_token_id, *TOK(before, add_special_tokens=False)["input_ids"], *[IMG] * 4]
    assert first.tolist() == ids + TOK(after, add_special_tokens=False)["input_ids"]
    assert prompt.endswith("what colour? ASSISTANT:")
    assert batch["attention_mask"][:, -1].tolist() == [1, 1]
    assert batch["attention_mask"][0, 0].item() == 0 or batch["attention_mask"][1, 0].item() == 0


@pytest.mark.parametrize(("num_workers", "augment"), [(0, False), (2, True)])
def test_resume_mid_epoch_repeats_the_uninterrupted_batches(shards, tmp_path: Path, num_workers, augment) -> None:
    """Exactness guaranteed: with the same seed, world size, num_workers and batch size, the batches after
    `load_state_dict` equal (keys and every tensor, random crops included) those an uninterrupted loader yields
    from that position. (Not covered: a worker that dropped a whole all-bad batch before the resume point.)"""
    settings = {
        "sources": {"train": [{"pattern": shards["mixed"]}]},
        "sampling": {"batches_per_epoch": 7},
        "loader": {"num_workers": num_workers},
        "media": {"augment": augment},
    }
    reference = list(make_datamodule(tmp_path / "a", **settings).train_dataloader())

    interrupted = make_datamodule(tmp_path / "b", **settings)
    loader = interrupted.train_dataloader()
    iterator = iter(loader)
    for _ in range(3):
        next(iterator)
    state = interrupted.state_dict()
    assert state["train"]["batches"] == 3 and state["train"]["epoch"] == 0
    del iterator

    resumed = make_datamodule(tmp_path / "c", **settings)
    resumed.load_state_dict(state)
    after = list(resumed.train_dataloader())
    assert len(after) == 4
    for expected, got in zip(reference[3:], after):
        assert got["keys"] == expected["keys"]
        for name in ("input_ids", "attention_mask", "labels", "images", "videos"):
            assert (name in got) == (name in expected)
            if name in got:
                assert torch.equal(got[name], expected[name]), name


class KeyRecorder(pl.LightningModule):
    """A one-parameter module that records the sample keys of every training batch."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = torch.nn.Parameter(torch.ones(()))
        self.seen: list[list[str]] = []

    def training_step(self, batch, batch_idx):
        self.seen.append(batch["keys"])
        return self.weight * batch["input_ids"].float().mean()

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.0)


def _fit(datamodule, max_steps: int, ckpt_path: str | None = None) -> tuple[KeyRecorder, pl.Trainer]:
    trainer = pl.Trainer(
        max_steps=max_steps,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_val_batches=0,
    )
    model = KeyRecorder()
    trainer.fit(model, datamodule=datamodule, ckpt_path=ckpt_path)
    return model, trainer


def test_lightning_resume_from_a_mid_epoch_checkpoint(shards, tmp_path: Path) -> None:
    """Under a Trainer the resume point counts batches given to `training_step` (not prefetched ones)."""
    settings = {"sources": {"train": [{"pattern": shards["good"]}]}, "sampling": {"batches_per_epoch": 5}}
    full, _ = _fit(make_datamodule(tmp_path / "a", **settings), max_steps=5)
    first, trainer = _fit(make_datamodule(tmp_path / "b", **settings), max_steps=3)
    assert first.seen == full.seen[:3]
    trainer.save_checkpoint(tmp_path / "mid.ckpt")
    assert trainer.datamodule.state_dict()["train"]["batches"] == 3
    resumed, _ = _fit(make_datamodule(tmp_path / "c", **settings), max_steps=5, ckpt_path=str(tmp_path / "mid.ckpt"))
    assert resumed.seen == full.seen[3:5]


def test_sources_accept_globs_fsspec_and_pipe_urls(shards, tmp_path: Path) -> None:
    braces = expand_pattern(shards["good"])
    assert expand_pattern(shards["good"].replace("{000..001}", "*")) == braces
    memory = fsspec.filesystem("memory")
    for i, path in enumerate(braces):
        memory.pipe(f"/lvlm-test/good-{i}.tar", Path(path).read_bytes())
    urls = expand_pattern("memory://lvlm-test/good-*.tar")
    assert urls == ["memory:///lvlm-test/good-0.tar", "memory:///lvlm-test/good-1.tar"]
    dm = make_datamodule(tmp_path, sources={"val": [{"pattern": "memory://lvlm-test/good-*.tar"}]})
    assert [k for b in dm.val_dataloader() for k in b["keys"]][:3] == ["g0000", "g0001", "g0002"]
    piped = make_datamodule(tmp_path / "pipe", sources={"val": [{"pattern": f"pipe:cat {braces[1]}"}]})
    assert [k for b in piped.val_dataloader() for k in b["keys"]] == ["h0000", "h0001", "h0002", "h0003"]
    with pytest.raises(FileNotFoundError, match="matches no shard"):
        expand_pattern(str(tmp_path / "nothing-*.tar"))


def test_unreadable_shards_are_reported_and_the_other_shards_arrive(shards, tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.tar"
    garbage.write_bytes(b"not a tar archive" * 100)
    sources = [{"pattern": str(garbage)}, {"pattern": str(tmp_path / "missing.tar")}, {"pattern": shards["good"]}]
    dm = make_datamodule(tmp_path / "run", sources={"val": sources})
    keys = [k for b in dm.val_dataloader() for k in b["keys"]]
    assert keys == [s["__key__"] for s in good_samples("g", 6) + good_samples("h", 4)]
    reported = read_bad_samples(tmp_path / "run")
    assert {e["reason"] for e in reported} == {"unreadable_shard"}
    assert any("missing.tar" in e["detail"] for e in reported) and any("garbage.tar" in e["detail"] for e in reported)


def test_video_backends_give_the_same_batches_and_unknown_ones_are_refused(shards, tmp_path: Path) -> None:
    from lvlm.data.decoding import available_backends

    batches = {
        backend: list(
            make_datamodule(
                tmp_path, sources={"val": [{"pattern": shards["good"]}]}, media={"video_backend": backend}
            ).val_dataloader()
        )
        for backend in available_backends()
    }
    reference = batches[available_backends()[0]]
    assert any("videos" in batch for batch in reference)
    for other in batches.values():
        assert [b["keys"] for b in other] == [b["keys"] for b in reference]
        for mine, theirs in zip(other, reference):
            assert all(torch.equal(mine[k], theirs[k]) for k in ("images", "input_ids") if k in theirs)
            if "videos" in theirs:
                # same decoded frames; the reduced-size scaling differs (swscale vs torch bilinear, see
                # test_decoding): about one grey level on average
                assert mine["videos"].shape == theirs["videos"].shape
                assert (mine["videos"].float() - theirs["videos"].float()).abs().mean() < 2.0
    with pytest.raises(ValueError, match="video_backend 'opencv' is not installed"):
        make_datamodule(tmp_path, sources={"val": [{"pattern": shards["good"]}]}, media={"video_backend": "opencv"})
