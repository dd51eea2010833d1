"""Question files: a JSON list of records or JSONL (one record per line, as POPE's ``coco_pope_*.json``).

The file is read by :func:`lvlm.data.record_files.read_records` and every record checked before any answer is
generated. A file that cannot be read at all (missing, empty, not JSON, a JSON value that is neither a list nor
lines of objects) is an :class:`~lvlm.core.text_files.InputFileError` naming the file; one bad line of a JSONL
file or one bad record is a skipped question, reported with its line and reason.

POPE's files (``coco_pope_{split}.json``) do not name their split and reuse question ids across splits: every
question of a file so named gets ``category: split`` (unless it has a category), which its prediction carries
to ``lvlm eval pope``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

from lvlm.core.text_files import InputFileError
from lvlm.data.record_files import read_records
from lvlm.inference.questions import Question, questions_from_records
from lvlm.models.modality import Modality

POPE_FILE = re.compile(r"coco_pope_(\w+)\.json")


def questions_from_file(
    path: str | Path,
    media_root: str | Path | None = None,
    encoding: str = "auto",
    modalities: Mapping[str, Modality] | None = None,
) -> tuple[list[Question], str]:
    """Every question of a file, checked (media paths relative to ``media_root``, default: the file's folder);
    markers are the placeholders of ``modalities`` (the model's), else of the installed modalities.

    Returns:
        ``(questions, note)``: questions in file order, the unusable ones carrying their ``error``; ``note``
        says how the file was decoded when it was not UTF-8.

    Raises:
        InputFileError: the file cannot be read as records (:func:`~lvlm.data.record_files.read_records`), or
            it is an empty list.
    """
    path = Path(path)
    loaded = read_records(path, encoding)
    if not loaded.values:
        raise InputFileError(f"{path}: the question list is empty")
    root = media_root if media_root is not None else path.parent
    pope = POPE_FILE.fullmatch(path.name)
    questions = list(questions_from_records(loaded.values, root, loaded.sources, modalities))
    if pope is not None:
        for question in questions:
            question.meta.setdefault("category", pope.group(1))
    return questions, loaded.note
