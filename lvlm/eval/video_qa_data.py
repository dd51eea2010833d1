"""Loading the released zero-shot video-QA files (MSVD-QA, MSRVTT-QA, TGIF-QA, ActivityNet-QA).

``test_q.json`` is a list of ``{"video_name", "question", "question_id"}`` and ``test_a.json`` a list of
``{"answer", "type", "question_id"}``. The original pairs them by position, and when inference runs in
chunks on several GPUs it indexes the answers from 0 in every chunk, pairing questions with the wrong
answers. Here they are paired by ``question_id`` whenever both files carry it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, NamedTuple

from lvlm.eval.records import EvalInputError, read_json, require_fields

VIDEO_EXTENSIONS = (".mp4", ".webm", ".avi", ".mkv", ".mov", ".gif")
# ActivityNet's test_q.json names videos without the "v_" that their files carry.
VIDEO_PREFIX = {"activitynet": "v_", "msvd": "", "msrvtt": "", "tgif": ""}


class VideoQAItem(NamedTuple):
    """One question: ``video_path`` is None when no video folder was given."""

    question_id: str
    video_path: Path | None
    question: str
    answer: str


def _read_list(path: str | Path, fields: list[str]) -> list[dict[str, Any]]:
    data = read_json(path)
    if not isinstance(data, list):
        raise EvalInputError(f"{path}: expected a JSON list, got {type(data).__name__}")
    for i, entry in enumerate(data):
        if not isinstance(entry, dict):
            raise EvalInputError(f"{path}: entry {i} is not an object")
        require_fields(entry, fields, f"{path}: entry {i}")
    return data


def _pair(questions: list[dict], answers: list[dict], q_path: Path, a_path: Path) -> list[tuple[dict, dict]]:
    if all("question_id" in e for e in questions) and all("question_id" in e for e in answers):
        by_id: dict[str, dict] = {}
        for entry in answers:
            qid = str(entry["question_id"])
            if qid in by_id:
                raise EvalInputError(f"{a_path}: duplicate question_id {qid}")
            by_id[qid] = entry
        lost = [str(q["question_id"]) for q in questions if str(q["question_id"]) not in by_id]
        if lost:
            raise EvalInputError(f"{a_path}: no answer for {len(lost)} question_ids of {q_path} (first: {lost[:5]})")
        return [(q, by_id[str(q["question_id"])]) for q in questions]
    if len(questions) != len(answers):
        raise EvalInputError(
            f"{q_path} has {len(questions)} questions but {a_path} has {len(answers)} answers, and without "
            "question_id in both files they can only be paired by position"
        )
    return [({"question_id": str(i), **q}, a) for i, (q, a) in enumerate(zip(questions, answers))]


def find_video(
    videos_dir: Path, name: str, prefix: str = "", extensions: tuple[str, ...] = VIDEO_EXTENSIONS
) -> Path | None:
    """The file for a video name: the name as given, else with each extension; None when absent."""
    stem = prefix + name
    if Path(stem).suffix.lower() in extensions and (videos_dir / stem).is_file():
        return videos_dir / stem
    for ext in extensions:
        for candidate in (videos_dir / f"{stem}{ext}", videos_dir / f"{stem}{ext.upper()}"):
            if candidate.is_file():
                return candidate
    return None


def load_video_qa(
    questions: str | Path,
    answers: str | Path,
    videos_dir: str | Path | None = None,
    dataset: str | None = None,
    video_prefix: str | None = None,
    extensions: tuple[str, ...] = VIDEO_EXTENSIONS,
) -> list[VideoQAItem]:
    """Aligned ``(question_id, video_path, question, answer)`` items, in the order of ``test_q.json``.

    Args:
        questions: ``test_q.json``.
        answers: ``test_a.json``.
        videos_dir: folder of the videos; when given, every video must exist.
        dataset: ``msvd``, ``msrvtt``, ``tgif`` or ``activitynet``; sets the file-name prefix (``v_``).
        video_prefix: explicit prefix instead of the dataset's.
        extensions: extensions tried, in order, after the bare name.

    Raises:
        EvalInputError: answers and questions cannot be aligned, or videos are missing (all are counted).
    """
    q_path, a_path = Path(questions), Path(answers)
    q_rows = _read_list(q_path, ["video_name", "question"])
    a_rows = _read_list(a_path, ["answer"])
    if dataset is not None and dataset not in VIDEO_PREFIX:
        raise ValueError(f"unknown dataset {dataset!r}; choose one of {sorted(VIDEO_PREFIX)}")
    prefix = video_prefix if video_prefix is not None else VIDEO_PREFIX.get(dataset or "", "")
    items, missing, found = [], {}, {}
    for q, a in _pair(q_rows, a_rows, q_path, a_path):
        name, path = str(q["video_name"]), None
        if videos_dir is not None:
            if name not in found:
                found[name] = find_video(Path(videos_dir), name, prefix, extensions)
            path = found[name]
            if path is None:
                missing[prefix + name] = None
        items.append(VideoQAItem(str(q["question_id"]), path, str(q["question"]), str(a["answer"])))
    if missing:
        raise EvalInputError(
            f"{q_path}: {len(missing)} of {len(found)} videos not found in {videos_dir} "
            f"(tried {', '.join(extensions)}; first missing: {list(missing)[:5]})"
        )
    return items
