"""POPE (object hallucination) with LLaVA's yes/no parser, torchmetrics, and a prediction-based yes-ratio.

Differences from the original ``eval_pope.py`` that change no number on well-formed input: labels are
matched to predictions by ``question_id`` (the original zips them by position), and a question without a
prediction is an error (or, with ``allow_missing``, counted and reported) instead of silently shifting
every later label.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from lvlm.eval.records import EvalInputError, Records, load_records, read_jsonl, record_key, require_fields
from lvlm.eval.results import EvalResult

CATEGORIES = ("adversarial", "popular", "random")
METRICS = ("accuracy", "precision", "recall", "f1", "yes_ratio")


def parse_pope_answer(text: str) -> str:
    """LLaVA's POPE parser: first sentence, commas dropped, split on spaces; 'no' if a word is No/not/no."""
    if "." in text:
        text = text.split(".")[0]
    words = text.replace(",", "").split(" ")
    return "no" if ("No" in words or "not" in words or "no" in words) else "yes"


def pope_metrics(predictions: list[str], labels: list[str]) -> dict[str, float]:
    """Accuracy, precision, recall, F1 (positive = 'yes') and the share of *predictions* that are 'yes'.

    Args:
        predictions: parsed answers, each 'yes' or 'no'.
        labels: ground truth, each 'yes' or 'no' (anything but 'no' counts as 'yes', as in the original).
    """
    import torch
    from torchmetrics.classification import BinaryAccuracy, BinaryF1Score, BinaryPrecision, BinaryRecall

    if not predictions or len(predictions) != len(labels):
        raise ValueError(f"need as many predictions as labels, got {len(predictions)} and {len(labels)}")
    preds = torch.tensor([p == "yes" for p in predictions], dtype=torch.long)
    target = torch.tensor([label != "no" for label in labels], dtype=torch.long)
    out = {
        "accuracy": BinaryAccuracy()(preds, target),
        "precision": BinaryPrecision()(preds, target),
        "recall": BinaryRecall()(preds, target),
        "f1": BinaryF1Score()(preds, target),
    }
    metrics = {name: float(value) for name, value in out.items()}
    # lmms-eval's pope_aggregate_yes_ratio counts labels (always ~0.5); the bias diagnostic needs predictions.
    metrics["yes_ratio"] = float(preds.float().mean())
    return metrics


def find_question_files(questions_dir: str | Path, categories: Iterable[str] = CATEGORIES) -> dict[str, Path]:
    """``coco_pope_<category>.json`` files in ``questions_dir``, keyed by category; at least one must exist."""
    questions_dir = Path(questions_dir)
    found = {c: questions_dir / f"coco_pope_{c}.json" for c in categories}
    found = {c: p for c, p in found.items() if p.is_file()}
    if not found:
        names = ", ".join(f"coco_pope_{c}.json" for c in categories)
        raise EvalInputError(f"{questions_dir}: no POPE question file found (looked for {names})")
    return found


def _match(questions: dict[str, list[dict]], predictions: Records) -> dict[tuple[str, str], dict]:
    """Map (category, question_id) -> prediction; a category field is needed only when ids repeat across files.

    A prediction without an id, for an unknown question, of an ambiguous category or repeating an earlier
    one is skipped and listed in ``predictions.skipped``.
    """
    owners: dict[str, list[str]] = {}
    for category, rows in questions.items():
        for q in rows:
            owners.setdefault(str(q["question_id"]), []).append(category)
    matched: dict[tuple[str, str], dict] = {}
    first: dict[tuple[str, str], str] = {}
    for where, record in predictions.located():
        qid = record_key(record)
        if "category" in record and record["category"] in questions:
            category = record["category"]
        elif qid is None:
            predictions.skip(where, record, "missing_field", "missing field 'question_id' (or 'key')")
            continue
        elif len(owners.get(qid, [])) == 1:
            category = owners[qid][0]
        elif qid in owners:
            detail = f"question_id {qid} is in {owners[qid]}; add a 'category' field"
            predictions.skip(where, record, "ambiguous_category", detail)
            continue
        else:
            detail = f"question_id {qid} is in none of the POPE files {sorted(questions)}"
            predictions.skip(where, record, "unknown_question", detail)
            continue
        if (category, qid) in matched:
            detail = f"second prediction for {category} question_id {qid} (first at {first[(category, qid)]})"
            predictions.skip(where, record, "duplicate_key", detail)
            continue
        matched[(category, qid)], first[(category, qid)] = record, where
    return matched


def _answered(category: str, rows: list[dict], matched: dict[tuple[str, str], dict]) -> tuple[list[dict], list]:
    """Parsed outcomes of the questions of one category that have a prediction, and the ids of those without."""
    items, absent = [], []
    for q in rows:
        record = matched.get((category, str(q["question_id"])))
        if record is None:
            absent.append(q["question_id"])
            continue
        parsed = parse_pope_answer(str(record["prediction"]))
        items.append({"category": category, "question_id": q["question_id"], "label": q["label"], "parsed": parsed})
    return items, absent


def _read_questions(files: Mapping[str, str | Path]) -> dict[str, list[dict[str, Any]]]:
    """Each category's question rows, every row checked for ``question_id`` and ``label``."""
    questions = {}
    for category, path in files.items():
        read = read_jsonl(path)
        for where, row in read.located():
            require_fields(row, ["question_id", "label"], where)
        questions[category] = read.rows
    return questions


def _category_row(category: str, answered: list[dict[str, Any]], metrics: dict[str, float]) -> list[Any]:
    """Score one category's answered questions: adds ``category/metric`` to ``metrics``, returns its table row."""
    scores = pope_metrics([it["parsed"] for it in answered], [it["label"] for it in answered])
    metrics.update({f"{category}/{k}": v for k, v in scores.items()})
    return [category, len(answered), *(scores[k] for k in METRICS)]


def evaluate_pope(
    predictions: str | Path | Iterable[Mapping[str, Any]],
    questions_dir: str | Path | None = None,
    question_files: Mapping[str, str | Path] | None = None,
    allow_missing: bool = False,
    encoding: str = "auto",
) -> EvalResult:
    """Score POPE predictions per category and on the mean of the categories.

    Args:
        predictions: JSONL path or records with ``prediction`` and ``question_id`` (or ``key``), plus
            ``category`` where question ids repeat across the category files.
        questions_dir: folder holding ``coco_pope_{adversarial,popular,random}.json`` (JSONL).
        question_files: explicit ``category -> file`` instead of ``questions_dir``.
        allow_missing: score only the answered questions (the count of missing ones is reported); a
            category with no answered question is left out of the table and the mean.
        encoding: of the prediction file (``auto``: UTF-8, else Latin-1).
    """
    files = dict(question_files) if question_files else find_question_files(questions_dir)
    questions = _read_questions(files)
    source = str(predictions) if isinstance(predictions, str | Path) else "predictions"
    records = load_records(predictions, ["prediction"], key=None, encoding=encoding)
    matched = _match(questions, records)
    metrics: dict[str, float] = {}
    rows_out, items, missing = [], [], 0
    for category, rows in questions.items():
        answered, absent = _answered(category, rows, matched)
        if absent and not allow_missing:
            raise EvalInputError(
                f"{source}: {len(absent)} of {len(rows)} questions in {files[category]} have no prediction "
                f"(first: {absent[:5]}); pass --allow-missing to score the answered ones only{records.skipped_hint()}"
            )
        missing += len(absent)
        if answered:
            items += answered
            rows_out.append(_category_row(category, answered, metrics))
    if not rows_out:
        raise EvalInputError(
            f"{source}: no prediction matches a question of {sorted(files.values())}{records.skipped_hint()}"
        )
    for i, k in enumerate(METRICS):  # the paper's POPE number is this mean of the splits' accuracies
        metrics[f"mean/{k}"] = sum(row[2 + i] for row in rows_out) / len(rows_out)
    rows_out.append(["mean", len(items), *(metrics[f"mean/{k}"] for k in METRICS)])
    return EvalResult(
        protocol="pope",
        metrics=metrics,
        headers=["category", "n", *METRICS],
        rows=rows_out,
        config={
            "predictions": source,
            "question_files": {c: str(p) for c, p in files.items()},
            "parser": "llava",
            "encoding": records.encoding,
        },
        counts={"scored": len(items), "missing": missing, "skipped": len(records.skipped)},
        items=items,
        skipped=records.skipped,
    )
