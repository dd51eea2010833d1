"""Open-ended video QA scored by a judge, as Video-ChatGPT / Video-LLaVA compute it.

accuracy = #yes / (#yes + #no) and score = mean of the integer scores, both over the judged items. Items the
judge could not judge are counted and reported as failures, never scored (the original retried them until
the judge answered, and crashed on replies it could not parse). When any item is unjudged the result gives no
metric at all (status ``incomplete``) unless the caller accepts a partial result (``allow_partial``, status
``partial``, metrics over the judged items and ``judged/total`` in the table); with no item judged there is
never a metric, so an unreachable judge can never read as accuracy 0.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from lvlm.eval.judges import Judge, JudgeError, JudgeItem, make_judge
from lvlm.eval.judges.prompt import SYSTEM_PROMPT, USER_PROMPT_HEAD, USER_PROMPT_TAIL
from lvlm.eval.records import EvalInputError, Records, load_records, record_key
from lvlm.eval.results import EvalResult
from lvlm.eval.video_qa_data import load_video_qa


def _items_with_references(
    records: Records, questions: str | Path, answers: str | Path, source: str, allow_missing: bool
) -> tuple[list[tuple[str, JudgeItem]], int]:
    """Pair predictions with the released answers by question id (never by position)."""
    refs = {item.question_id: item for item in load_video_qa(questions, answers)}
    out, seen = [], set()
    for where, record in records.located():
        qid = record_key(record)
        if qid not in refs:
            records.skip(where, record, "unknown_question", f"question_id {qid!r} is not in {questions}")
            continue
        seen.add(qid)
        out.append((qid, JudgeItem(refs[qid].question, refs[qid].answer, str(record["prediction"]))))
    missing = [q for q in refs if q not in seen]
    if missing and not allow_missing:
        first = missing[:5]
        raise EvalInputError(
            f"{source}: {len(missing)} questions of {questions} have no prediction (first: {first}); pass "
            "--allow-missing to score the answered ones only" + records.skipped_hint()
        )
    return out, len(missing)


def _items_from_records(records: Records) -> tuple[list[tuple[str, JudgeItem]], int]:
    out = []
    for where, record in records.located():
        absent = [name for name in ("question", "answer") if name not in record]
        if absent:
            detail = f"missing field {absent[0]!r}; give --questions/--answers or write it in"
            records.skip(where, record, "missing_field", detail)
            continue
        item = JudgeItem(str(record["question"]), str(record["answer"]), str(record["prediction"]))
        out.append((str(record_key(record)), item))
    return out, 0


def video_qa_metrics(preds: list[str], scores: list[int]) -> dict[str, float]:
    """The original's accuracy (#yes / (#yes + #no)) and mean score, over judged items (none: no metric)."""
    if not preds:
        return {}
    return {"accuracy": preds.count("yes") / len(preds), "score": sum(scores) / len(scores)}


def _judge_all(judge: Judge, pairs: list[tuple[str, JudgeItem]]) -> tuple[list[dict], dict[str, int]]:
    """Per-question outcomes (a verdict or an error) and the judge's counters for this run only."""
    before = judge.stats.as_dict()
    outcomes = judge.judge_many([item for _, item in pairs])
    after = judge.stats.as_dict()
    items = []
    for (qid, item), outcome in zip(pairs, outcomes):
        row = {"key": qid, "question": item.question, "answer": item.answer, "prediction": item.prediction}
        if isinstance(outcome, JudgeError):
            row["error"] = str(outcome)
        else:
            row.update(pred=outcome.pred, score=outcome.score, raw=outcome.raw, cached=outcome.cached)
        items.append(row)
    return items, {k: after[k] - before[k] for k in ("cache_hits", "requests", "retries", "malformed", "past_deadline")}


def _score(items: list[dict[str, Any]], allow_partial: bool) -> tuple[list[dict[str, Any]], str, dict[str, float]]:
    """The judged items, the status (``complete``/``partial``/``incomplete``) and the metrics it allows."""
    judged = [it for it in items if "pred" in it]
    status = "complete" if len(judged) == len(items) else ("partial" if allow_partial and judged else "incomplete")
    metrics = (
        {}
        if status == "incomplete"
        else video_qa_metrics([it["pred"] for it in judged], [it["score"] for it in judged])
    )
    return judged, status, metrics


def _reference_files(questions: str | Path | None, answers: str | Path | None) -> dict[str, str | None]:
    return {
        "questions": None if questions is None else str(questions),
        "answers": None if answers is None else str(answers),
    }


def _judge_info(judge: Judge) -> dict[str, Any]:
    """What the result records of the judge: its description, and the prompt when a model judges."""
    info = dict(judge.describe())
    if judge.kind != "exact":
        info["prompt"] = {"system": SYSTEM_PROMPT, "user_head": USER_PROMPT_HEAD, "user_tail": USER_PROMPT_TAIL}
    return info


def evaluate_video_qa(
    predictions: str | Path | Iterable[Mapping[str, Any]],
    judge: Judge | str = "exact",
    questions: str | Path | None = None,
    answers: str | Path | None = None,
    allow_missing: bool = False,
    judge_options: Mapping[str, Any] | None = None,
    allow_partial: bool = False,
    encoding: str = "auto",
) -> EvalResult:
    """Judge every prediction and compute accuracy and mean score.

    Args:
        predictions: JSONL path or records with ``key`` (the question id) and ``prediction``; without
            ``questions``/``answers`` they must also carry ``question`` and ``answer``.
        judge: a :class:`Judge`, or a kind (``exact``/``openai``) built with ``judge_options``.
        questions, answers: the released ``test_q.json`` / ``test_a.json`` (answers are taken from there).
        allow_missing: score even when some questions have no prediction (their count is reported).
        judge_options: arguments of :func:`~lvlm.eval.judges.make_judge` when ``judge`` is a kind.
        allow_partial: when some items could not be judged, score the judged ones (status ``partial``);
            otherwise no metric is given (status ``incomplete``). With no item judged there is never a metric.
        encoding: of the prediction file (``auto``: UTF-8, else Latin-1).
    """
    judge = make_judge(judge, **dict(judge_options or {})) if isinstance(judge, str) else judge
    source = str(predictions) if isinstance(predictions, str | Path) else "predictions"
    if (questions is None) != (answers is None):
        raise EvalInputError("give both --questions (test_q.json) and --answers (test_a.json), or neither")
    records = load_records(predictions, ["prediction"], aliases={"prediction": "pred"}, encoding=encoding)
    if questions is None:
        pairs, missing = _items_from_records(records)
    else:
        pairs, missing = _items_with_references(records, questions, answers, source, allow_missing)
    if not pairs:
        raise EvalInputError(f"{source}: no prediction to judge{records.skipped_hint()}")
    items, judge_counts = _judge_all(judge, pairs)
    judged, status, metrics = _score(items, allow_partial)
    preds = [it["pred"] for it in judged]
    counts = {"questions": len(items), "judged": len(judged), "failed": len(items) - len(judged), "missing": missing}
    counts.update(judge_counts, yes=preds.count("yes"), no=preds.count("no"), skipped=len(records.skipped))
    info = _judge_info(judge)
    scores = [metrics.get("accuracy", "-"), metrics.get("score", "-")]
    return EvalResult(
        protocol="video-qa",
        metrics=metrics,
        headers=["judge", "model", "prompt", "judged/total", "failed", "accuracy", "score"],
        rows=[
            [judge.kind, info["model"], info["prompt_hash"], f"{len(judged)}/{len(items)}", counts["failed"], *scores]
        ],
        config={
            "predictions": source,
            **_reference_files(questions, answers),
            "judge": info,
            "encoding": records.encoding,
        },
        counts=counts,
        items=items,
        skipped=records.skipped,
        status=status,
    )
