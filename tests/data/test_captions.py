"""Caption-pair shards (img2dataset / video2dataset layout) as a DataModule source, with a configurable prompt."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from shard_fixtures import JPEG, VIDEO, make_datamodule, write_shards
from tokenizer_fixtures import tiny_modalities, tiny_tokenizer

from lvlm.data.captions import DEFAULT_CAPTION_PROMPT, caption_record
from lvlm.data.report import read_bad_samples
from lvlm.data.sample_errors import PlaceholderMismatchError, SampleFormatError

TOK = tiny_tokenizer()
MODALITIES = tiny_modalities()


IMAGE_CAPTIONS = ["a red circle", "a blue square", "a green triangle", "a yellow diamond"]
VIDEO_CAPTIONS = ["a square moving left", "a circle moving right"]


def img2dataset_samples() -> list[dict]:
    """What img2dataset writes: `key.jpg`, `key.txt`, `key.json` (metadata, with the caption again)."""
    return [
        {
            "__key__": f"{i:09d}",
            "jpg": JPEG,
            "txt": caption.encode(),
            "json": json.dumps({"url": f"http://x/{i}.jpg", "caption": caption, "width": 20}).encode(),
        }
        for i, caption in enumerate(IMAGE_CAPTIONS)
    ]


def video2dataset_samples() -> list[dict]:
    """What video2dataset writes: `key.mp4`, `key.txt`."""
    return [{"__key__": f"v{i:08d}", "mp4": VIDEO, "txt": caption.encode()} for i, caption in enumerate(VIDEO_CAPTIONS)]


def test_a_caption_pair_becomes_a_one_turn_conversation():
    raw = img2dataset_samples()[1]
    record = caption_record(raw, modalities=MODALITIES)
    assert record["conversations"] == [
        {"from": "human", "value": "<image>\nDescribe the image briefly."},
        {"from": "gpt", "value": "a blue square"},
    ]
    assert record["url"] == "http://x/1.jpg" and record["width"] == 20
    video = caption_record(video2dataset_samples()[0], "What happens in this {media}?", MODALITIES)
    assert video["conversations"][0]["value"] == "<video>\nWhat happens in this video?"
    assert caption_record(raw, "Caption: <image>", MODALITIES)["conversations"][0]["value"] == "Caption: <image>"
    no_txt = {k: v for k, v in raw.items() if k != "txt"}
    assert (
        caption_record(no_txt, modalities=MODALITIES)["conversations"][1]["value"] == "a blue square"
    )  # from the json's caption
    assert DEFAULT_CAPTION_PROMPT == "Describe the {media} briefly."


@pytest.mark.parametrize(
    ("sample", "error"),
    [
        ({"__key__": "k", "jpg": JPEG}, SampleFormatError),
        ({"__key__": "k", "jpg": JPEG, "txt": b"  "}, SampleFormatError),
        ({"__key__": "k", "jpg": JPEG, "txt": b"\xff\xfe"}, SampleFormatError),
        ({"__key__": "k", "txt": b"no media"}, PlaceholderMismatchError),
        ({"__key__": "k", "jpg": JPEG, "mp4": VIDEO, "txt": b"two media"}, PlaceholderMismatchError),
    ],
)
def test_a_bad_caption_pair_is_a_bad_sample(sample, error):
    with pytest.raises(error):
        caption_record(sample, modalities=MODALITIES)


def test_the_datamodule_trains_on_caption_shards_with_the_source_prompt(tmp_path: Path):
    images = write_shards(tmp_path / "laion", "part", [img2dataset_samples()])
    videos = write_shards(tmp_path / "webvid", "part", [video2dataset_samples()])
    bad = write_shards(tmp_path / "bad", "part", [[{"__key__": "nocap", "jpg": JPEG}]])
    dm = make_datamodule(
        tmp_path / "run",
        sources={
            "val": [
                {"pattern": images, "format": "captions", "prompt": "write a short caption."},
                {"pattern": videos, "format": "captions"},
                {"pattern": bad, "format": "captions"},
            ]
        },
        loader={"batch_size": 7},
        max_length=96,
    )
    (batch,) = list(dm.val_dataloader())
    assert batch["keys"] == [f"{i:09d}" for i in range(4)] + ["v00000000", "v00000001"]
    assert batch["modalities"] == ["image"] * 4 + ["video"] * 2
    assert batch["images"].shape[0] == 4 and batch["videos"].shape[0] == 2
    text = TOK.decode(batch["input_ids"][0][batch["attention_mask"][0].bool()], skip_special_tokens=False)
    assert "<image> \nwrite a short caption. ASSISTANT: a red circle</s>" in text
    targets = batch["labels"][4][batch["labels"][4] != -100]
    assert TOK.decode(targets, skip_special_tokens=True).strip() == "a square moving left"
    video_text = TOK.decode(batch["input_ids"][4], skip_special_tokens=False)
    assert "escribe the video briefly. ASSISTANT: a square moving left" in video_text  # the tiny vocabulary has no D
    image_positions = batch["input_ids"][0] == TOK.convert_tokens_to_ids("<image>")
    assert image_positions.sum() == 4 and (batch["labels"][0][image_positions] == -100).all()
    assert [(e["key"], e["reason"]) for e in read_bad_samples(tmp_path / "run")] == [("nocap", "bad_json")]


def test_an_unknown_source_format_is_refused(tmp_path: Path):
    with pytest.raises(ValueError, match="format must be 'conversations' or 'captions'"):
        make_datamodule(tmp_path, sources={"val": [{"pattern": "x.tar", "format": "pairs"}]})
    with pytest.raises(ValueError, match="'prompt' is a string, for format 'captions'"):
        make_datamodule(tmp_path, sources={"val": [{"pattern": "x.tar", "prompt": "Describe."}]})
