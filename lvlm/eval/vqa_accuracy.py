"""VQAv2 soft accuracy for local image-QA sets with several human answers per question.

``acc = mean over the leave-one-out subsets of min(#matching humans in the subset / 3, 1)``: with 10 answers
this is the official average over the 10 subsets of 9. Predictions and references are both normalised with
:func:`normalize_vqa_answer` (the official script skips normalisation when all 10 humans agree; lvlm
always normalises, as the TextVQA/EvalAI evaluator does, so "Yes." matches "yes" in every case).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from lvlm.eval.records import EvalInputError, load_records, read_json, record_key
from lvlm.eval.results import EvalResult
from lvlm.eval.vqa_normalize import normalize_vqa_answer


def vqa_soft_accuracy(prediction: str, references: Sequence[str]) -> float:
    """Soft accuracy of one prediction against the human ``references`` (normally 10)."""
    if not references:
        raise ValueError("need at least one reference answer")
    pred = normalize_vqa_answer(prediction)
    refs = [normalize_vqa_answer(r) for r in references]
    if len(refs) == 1:
        return float(pred == refs[0])
    accs = []
    for i in range(len(refs)):
        others = refs[:i] + refs[i + 1 :]
        accs.append(min(1.0, sum(r == pred for r in others) / 3))
    return sum(accs) / len(accs)


def _answers_of(entry: Mapping[str, Any], where: str) -> list[str]:
    answers = entry.get("answers")
    if not isinstance(answers, list) or not answers:
        raise EvalInputError(f"{where}: field 'answers' must be a non-empty list of strings or {{'answer': ...}}")
    return [str(a["answer"]) if isinstance(a, Mapping) else str(a) for a in answers]


def load_vqa_annotations(path: str | Path) -> dict[str, dict[str, Any]]:
    """Read references: a list of ``{"question_id", "answers", "answer_type"?}`` or VQAv2's ``{"annotations": [...]}``.

    Returns:
        ``str(question_id) -> {"answers": [str], "answer_type": str | None}``.
    """
    data = read_json(path)
    if isinstance(data, Mapping):
        if "annotations" not in data:
            raise EvalInputError(f"{path}: expected a list of questions or an object with 'annotations'")
        data = data["annotations"]
    if not isinstance(data, list):
        raise EvalInputError(f"{path}: expected a list of questions, got {type(data).__name__}")
    out: dict[str, dict[str, Any]] = {}
    for i, entry in enumerate(data):
        where = f"{path}: entry {i}"
        if not isinstance(entry, Mapping) or "question_id" not in entry:
            raise EvalInputError(f"{where}: missing field 'question_id'")
        qid = str(entry["question_id"])
        if qid in out:
            raise EvalInputError(f"{where}: duplicate question_id {qid}")
        answers = _answers_of(entry, f"{where} (question_id {qid})")
        out[qid] = {"answers": answers, "answer_type": entry.get("answer_type")}
    return out


def evaluate_vqa(
    predictions: str | Path | Iterable[Mapping[str, Any]],
    annotations: str | Path,
    allow_missing: bool = False,
    encoding: str = "auto",
) -> EvalResult:
    """Soft accuracy overall and per ``answer_type`` (when the annotations carry one).

    Predictions are matched by ``question_id`` (or ``key``); a prediction for an unknown question or a second
    one for the same question is skipped and listed; a question without a prediction is an error unless
    ``allow_missing``.
    """
    refs = load_vqa_annotations(annotations)
    source = str(predictions) if isinstance(predictions, str | Path) else "predictions"
    records = load_records(predictions, ["prediction"], encoding=encoding)
    items, seen = [], set()
    for where, record in records.located():
        qid = record_key(record)
        if qid not in refs:
            records.skip(where, record, "unknown_question", f"question_id {qid!r} is not in {annotations}")
            continue
        seen.add(qid)
        acc = vqa_soft_accuracy(str(record["prediction"]), refs[qid]["answers"])
        items.append({"question_id": qid, "answer_type": refs[qid]["answer_type"], "accuracy": acc})
    missing = [q for q in refs if q not in seen]
    if missing and not allow_missing:
        first = missing[:5]
        raise EvalInputError(
            f"{source}: {len(missing)} questions of {annotations} have no prediction (first: {first}); pass "
            "--allow-missing to score the answered ones only" + records.skipped_hint()
        )
    if not items:
        raise EvalInputError(f"{source}: no predictions{records.skipped_hint()}")
    by_type: dict[str, list[float]] = defaultdict(list)
    for item in items:
        if item["answer_type"] is not None:
            by_type[str(item["answer_type"])].append(item["accuracy"])
    metrics = {"accuracy": sum(it["accuracy"] for it in items) / len(items)}
    rows: list[list[Any]] = [["all", len(items), metrics["accuracy"]]]
    for name in sorted(by_type):
        metrics[f"{name}/accuracy"] = sum(by_type[name]) / len(by_type[name])
        rows.append([name, len(by_type[name]), metrics[f"{name}/accuracy"]])
    return EvalResult(
        protocol="vqa",
        metrics=metrics,
        headers=["answer_type", "n", "accuracy"],
        rows=rows,
        config={
            "predictions": source,
            "annotations": str(annotations),
            "metric": "vqav2_soft_accuracy",
            "encoding": records.encoding,
        },
        counts={"scored": len(items), "missing": len(missing), "skipped": len(records.skipped)},
        items=items,
        skipped=records.skipped,
    )
