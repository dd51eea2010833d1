"""The quickstart's test questions: every question of every held-out test conversation, one by one.

A test sample holds 2-4 questions about one image or video. Question ``i`` is asked with the earlier turns
and their reference answers as history (as in training), and keeps its own type, modality and choices, so
the scores can be grouped per question type and modality (:mod:`lvlm.eval.synthetic_qa`).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from pathlib import Path

from lvlm.data.sample_format import media_members
from lvlm.inference.questions import Question, media_fields
from lvlm.modalities.catalog import installed_modalities


def test_questions(shards: Sequence[str | Path]) -> Iterator[Question]:
    """Questions from the synthetic world's ``stage2/test-*.tar`` shards, in order, keys ``<sample>/q<i>``."""
    import webdataset as wds

    dataset = wds.WebDataset([str(s) for s in shards], shardshuffle=False, empty_check=False)
    index = 0
    modalities = installed_modalities()
    for sample in dataset:
        record = json.loads(sample["json"])
        meta, turns = record["meta"], record["conversations"]
        members = media_members(sample, modalities)
        media = [(name, data) for name in media_fields() for _, data in members[name]]
        for i, (question_type, answer) in enumerate(zip(meta["question_types"], meta["answers"])):
            if question_type not in meta["choices"]:
                continue
            human = turns[2 * i]["value"]
            yield Question(
                index=index,
                key=f"{sample['__key__']}/q{i}",
                conversations=turns[: 2 * i + 1],
                media=media,
                question=human.replace("<image>\n", "").replace("<video>\n", ""),
                answer=answer,
                meta={
                    "question_type": question_type,
                    "modality": meta["modality"],
                    "choices": meta["choices"][question_type],
                },
            )
            index += 1


def write_examples(world_dir: Path, directory: Path) -> list[tuple[str, Path]]:
    """The first test image and video as plain files, for ``lvlm chat --image/--video``."""
    directory.mkdir(parents=True, exist_ok=True)
    written: dict[str, Path] = {}
    for question in test_questions(sorted((world_dir / "stage2").glob("test-*.tar"))):
        (modality, data), stem = question.media[0], question.key.split("/")[0]
        if modality in written:
            continue
        ext = "mp4" if modality == "video" else ("png" if data[:4] == b"\x89PNG" else "jpg")
        written[modality] = directory / f"{stem}.{ext}"
        written[modality].write_bytes(data)
        if len(written) == 2:
            break
    return sorted(written.items())
