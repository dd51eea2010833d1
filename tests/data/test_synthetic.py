"""The synthetic world: determinism, real shards, labels that match the pixels."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest
import webdataset as wds

from lvlm.data.decoding import decode_image, decode_video
from lvlm.data.sample_format import count_placeholders, media_members
from lvlm.data.synthetic import (
    CHOICES,
    WorldSizes,
    build_sample,
    corpus_texts,
    questions,
    write_synthetic_world,
)
from lvlm.data.synthetic_render import BACKGROUND, COLORS
from lvlm.modalities import ImageModality, VideoModality

TINY = {"stage1_train": 12, "stage2_train": 16, "stage2_val": 6, "stage2_test": 6, "samples_per_shard": 10}

MODALITIES = [ImageModality(tower=None).bind("image"), VideoModality(tower=None).bind("video")]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    return write_synthetic_world(tmp_path_factory.mktemp("world"), seed=3, sizes=TINY)


def _samples(world, split):
    return list(wds.WebDataset([str(p) for p in world.shards[split]], shardshuffle=False))


def test_layout_counts_and_patterns(world):
    assert world.counts == {"stage1/train": 12, "stage2/train": 16, "stage2/val": 6, "stage2/test": 6}
    assert [p.name for p in world.shards["stage2/train"]] == ["train-000000.tar", "train-000001.tar"]
    assert world.pattern("stage2/train") == str(world.root / "stage2" / "train-{000000..000001}.tar")
    assert world.pattern("stage2/val") == str(world.root / "stage2" / "val-000000.tar")
    assert sorted(p.name for p in world.root.iterdir()) == ["corpus.txt", "stage1", "stage2", "world.json"]
    assert not list(world.root.rglob("*.tmp"))
    for split, count in world.counts.items():
        assert len(_samples(world, split)) == count


def _files(world) -> dict[str, bytes]:
    """Every file the world wrote, by path inside its folder."""
    return {str(p.relative_to(world.root)): p.read_bytes() for p in sorted(world.root.rglob("*")) if p.is_file()}


def test_same_seed_same_files_different_seed_differs(world, tmp_path):
    again = write_synthetic_world(tmp_path / "again", seed=3, sizes=TINY)
    other = write_synthetic_world(tmp_path / "other", seed=4, sizes=TINY)
    files = _files(world)
    assert any(name.endswith(".tar") for name in files)
    assert _files(again) == files  # byte for byte: shards with their jpg, png and mp4 members, corpus, manifest
    assert set(_files(other)) == set(files)
    assert all(data != files[name] for name, data in _files(other).items())


def test_samples_follow_the_data_format(world):
    for split in world.shards:
        for sample in _samples(world, split):
            meta = json.loads(sample["json"])
            members = media_members(sample, MODALITIES)
            placeholders = count_placeholders(meta["conversations"], MODALITIES)
            assert placeholders == {name: len(items) for name, items in members.items()}
            assert "." not in sample["__key__"]
            if split.startswith("stage2") and meta["meta"]["modality"] != "text":
                m = meta["meta"]
                gpt = [t["value"] for t in meta["conversations"] if t["from"] == "gpt"]
                assert gpt == m["answers"] and len(m["question_types"]) == len(gpt) in (2, 3, 4)
                for qtype, answer in zip(m["question_types"], m["answers"]):
                    assert answer in m["choices"][qtype] == CHOICES[qtype]


def test_stage1_is_captioning(world):
    sample = _samples(world, "stage1/train")[0]
    turns = json.loads(sample["json"])["conversations"]
    assert [t["from"] for t in turns] == ["human", "gpt"]
    assert turns[0]["value"].startswith(("<image>\n", "<video>\n"))
    assert turns[1]["value"].startswith("a ")


def _centroid(frame: np.ndarray) -> np.ndarray:
    mask = np.abs(frame.astype(int) - BACKGROUND).sum(-1) > 120
    ys, xs = np.nonzero(mask)
    return np.array([xs.mean(), ys.mean()])


@pytest.mark.parametrize("seed", [0, 1])
def test_motion_and_colour_labels_match_the_decoded_video(seed):
    sizes = WorldSizes(video_fraction=1.0, text_fraction=0.0)
    seen = set()
    for index in range(24):
        sample = build_sample(seed, "stage2/test", index, sizes)
        scene = sample["json"]["meta"]["scene"]
        video = decode_video(sample["mp4"], 8, key=sample["__key__"]).numpy()
        first, last = _centroid(video[0]), _centroid(video[-1])
        dx, dy = last - first
        if scene["event"] == "move":
            expected = {"right": dx > 25, "left": dx < -25, "down": dy > 25, "up": dy < -25}
            assert expected[scene["direction"]], (scene, dx, dy)
            seen.add(scene["direction"])
        else:
            assert abs(dx) < 2 and abs(dy) < 2
            for frame, colour in [(video[0], scene["color"]), (video[-1], scene["end_color"])]:
                x, y = _centroid(frame).round().astype(int)
                assert np.abs(frame[y, x].astype(int) - COLORS[colour]).max() < 40
            seen.add("change")
    assert seen == {"left", "right", "up", "down", "change"}


def test_image_labels_match_the_pixels():
    sizes = WorldSizes(video_fraction=0.0, text_fraction=0.0)
    for index in range(12):
        sample = build_sample(0, "stage2/val", index, sizes)
        media = media_members(sample, MODALITIES)["image"]
        image = np.asarray(decode_image(media[0][1]))
        for colour, _, cell in sample["json"]["meta"]["scene"]["objects"]:
            cx, cy = int((cell % 3 + 0.5) * 64 / 3), int((cell // 3 + 0.5) * 64 / 3)
            assert np.abs(image[cy, cx].astype(int) - COLORS[colour]).max() < 40


def test_corpus_covers_all_texts_without_rendering(world):
    texts = corpus_texts(seed=3, sizes=TINY)
    assert world.corpus_path.read_text().splitlines() == [t.replace("\n", " ") for t in texts]
    words = set(" ".join(texts).split())
    assert {"purple", "diamond", "three", "left", "change", "yes"} <= words
    assert not any("<image>" in t or "<video>" in t for t in texts)


def test_unknown_size_field_is_rejected(tmp_path):
    with pytest.raises(ValueError, match="stage3_train"):
        write_synthetic_world(tmp_path, sizes={"stage3_train": 1})


def test_image_questions_bind_attributes_to_named_objects():
    """Up to three colour-of-a-shape / shape-of-a-colour questions per image, answered from the scene."""
    rng = random.Random(0)
    scene = {"modality": "image", "objects": [["red", "circle", 0], ["blue", "square", 4], ["green", "diamond", 8]]}
    for _ in range(20):
        asked = questions(scene, rng)
        binding = [q for q in asked if q[0] in ("color", "shape")]
        assert len(asked) == 4 and len(binding) == 3 and len({q[1] for q in binding}) == 3
        assert {q[0] for q in asked} - {"color", "shape"} <= {"count", "exists"}
        truth = {f"What color is the {s}?": c for c, s, _ in scene["objects"]}
        truth |= {f"What shape is the {c} object?": s for c, s, _ in scene["objects"]}
        assert all(truth[question] == answer for _, question, answer in binding)
    one = {"modality": "image", "objects": [["red", "circle", 4]]}
    assert len(questions(one, rng)) == 3
