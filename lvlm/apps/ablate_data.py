"""The data arms of ``lvlm ablate``: which stage-2 samples of the synthetic world a run trains on.

- ``joint``: every sample (images, videos, a few text-only), as the paper trains.
- ``image_only`` / ``video_only``: the media samples of one modality (text-only samples kept).
- ``transfer``: every sample, but no video is ever asked its shape: the concept is taught by the images only
  (``What shape is the red object?``) and the test still asks the videos (``What shape is in the video?``).

Every arm is evaluated on the same held-out test split, so the image-only arm's video rows measure how far
image training alone carries (and vice versa). The arms are written as shards beside the world (samples
byte-identical but for the edited conversations of the transfer arm).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from lvlm.core.work_folder import write_atomic
from lvlm.data.shards import ShardWriter, encode_json

DATA_ARMS = ("joint", "image_only", "video_only", "transfer")
HELD_OUT = ("video", "shape")  # the transfer arm never trains on this (modality, question type)


def keep_sample(arm: str, record: dict[str, Any]) -> dict[str, Any] | None:
    """The sample's ``json`` record as the arm trains on it, or None when the arm leaves it out."""
    modality = record["meta"]["modality"]
    if arm in ("joint", "transfer") and not (arm == "transfer" and modality == HELD_OUT[0]):
        return record
    if arm == "image_only":
        return record if modality in ("image", "text") else None
    if arm == "video_only":
        return record if modality in ("video", "text") else None
    if arm == "transfer":
        return without_question_type(record, HELD_OUT[1])
    raise ValueError(f"unknown data arm {arm!r}; known: {list(DATA_ARMS)}")


def without_question_type(record: dict[str, Any], question_type: str) -> dict[str, Any] | None:
    """The record with every turn pair of ``question_type`` removed (None if nothing is left).

    The media placeholder moves to the first remaining question, where the paper's samples put it.
    """
    meta, turns = record["meta"], record["conversations"]
    kept = [i for i, asked in enumerate(meta["question_types"]) if asked != question_type]
    if not kept:
        return None
    placeholder = f"<{meta['modality']}>\n"
    conversations = []
    for n, i in enumerate(kept):
        human = turns[2 * i]["value"].replace(placeholder, "")
        conversations += [{"from": "human", "value": (placeholder if n == 0 else "") + human}, turns[2 * i + 1]]
    types = [meta["question_types"][i] for i in kept]
    new_meta = meta | {
        "question_types": types,
        "answers": [meta["answers"][i] for i in kept],
        "choices": {k: v for k, v in meta["choices"].items() if k in types},
    }
    return {**record, "conversations": conversations, "meta": new_meta}


def _samples(shards: list[Path]) -> Iterator[dict[str, Any]]:
    import webdataset as wds

    yield from wds.WebDataset([str(s) for s in shards], shardshuffle=False, empty_check=False)


def write_data_arm(arm: str, train_shards: list[Path], out_dir: Path) -> dict[str, int]:
    """Write ``out_dir/stage2/train-*.tar`` for ``arm`` from the world's stage-2 training shards.

    ``out_dir/arm.json`` (counts per modality) is written last and marks the arm as done.
    """
    counts: dict[str, int] = {}
    writer = ShardWriter(str(out_dir / "stage2" / "train-%06d.tar"), max_count=500, mtime=0)
    with writer:
        for sample in _samples(train_shards):
            record = keep_sample(arm, json.loads(sample["json"]))
            if record is None:
                continue
            members = {k: v for k, v in sample.items() if not k.startswith("__") and k != "json"}
            writer.write({"__key__": sample["__key__"], "json": encode_json(record), **members})
            modality = record["meta"]["modality"]
            counts[modality] = counts.get(modality, 0) + 1
    write_atomic(out_dir / "arm.json", json.dumps({"arm": arm, "counts": counts}) + "\n")  # the marker, whole or absent
    return counts
