"""Accuracy on the quickstart's synthetic world, per question type and modality, next to chance.

A record carries ``answer`` and ``prediction`` plus ``question_type``, ``modality`` and ``choices`` (the
answers the world could give), either flat or as written in the world's shards and passed through by
``lvlm predict``: ``meta = {"modality", "question_types": [...], "choices": {type: [...]}}``, where the
answered question is the last one. Chance for one question is ``1 / len(choices)``; a row's chance is the
mean over its questions, and empty when some have no choices (open text questions). Answers are short,
so the match is exact after normalisation (number words count as digits: "two" matches "2").
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, NamedTuple

from lvlm.eval.judges.exact import answers_match
from lvlm.eval.records import EvalInputError, load_records
from lvlm.eval.results import EvalResult
from lvlm.eval.table import render_table

HEADERS = ["question_type", "modality", "n", "accuracy", "chance"]


class SyntheticRow(NamedTuple):
    """One line of the table; ``question_type``/``modality`` are ``"all"`` on the total line."""

    question_type: str
    modality: str
    n: int
    accuracy: float
    chance: float | None


def synthetic_fields(record: Mapping[str, Any], where: str) -> tuple[str, str, list | None]:
    """``(question_type, modality, choices or None)`` of a flat or shard-style record."""
    meta = record.get("meta") if isinstance(record.get("meta"), Mapping) else {}
    question_type = record.get("question_type")
    if question_type is None and meta.get("question_types"):
        question_type = meta["question_types"][-1]
    modality = record.get("modality", meta.get("modality"))
    for name, value in (("question_type", question_type), ("modality", modality)):
        if value is None:
            raise EvalInputError(f"{where} (key {record.get('key')!r}): missing field {name!r}")
    choices = record.get("choices", meta.get("choices"))
    if isinstance(choices, Mapping):
        choices = choices.get(question_type)
    if choices is not None and not isinstance(choices, list):
        raise EvalInputError(f"{where} (key {record.get('key')!r}): 'choices' must be a list")
    return str(question_type), str(modality), choices or None


def synthetic_rows(records: Iterable[Mapping[str, Any]], total: bool = True) -> list[SyntheticRow]:
    """Rows sorted by (question_type, modality), with a final ``all``/``all`` row when ``total``.

    Raises:
        EvalInputError: a record lacks ``answer``, ``prediction``, a question type or a modality.
    """
    groups: dict[tuple[str, str], list[tuple[bool, float | None]]] = defaultdict(list)
    for i, record in enumerate(records):
        where = f"predictions[{i}]"
        for name in ("answer", "prediction"):
            if name not in record:
                raise EvalInputError(f"{where} (key {record.get('key')!r}): missing field {name!r}")
        question_type, modality, choices = synthetic_fields(record, where)
        hit = answers_match(str(record["prediction"]), str(record["answer"]), contains=False)
        groups[(question_type, modality)].append((hit, 1 / len(choices) if choices else None))
    if not groups:
        raise EvalInputError("no predictions to score")
    rows = [_row(qt, mod, outcomes) for (qt, mod), outcomes in sorted(groups.items())]
    if total:
        rows.append(_row("all", "all", [o for outcomes in groups.values() for o in outcomes]))
    return rows


def _row(question_type: str, modality: str, outcomes: list[tuple[bool, float | None]]) -> SyntheticRow:
    n = len(outcomes)
    chances = [c for _, c in outcomes]
    chance = None if None in chances else sum(chances) / n
    return SyntheticRow(question_type, modality, n, sum(h for h, _ in outcomes) / n, chance)


def render_synthetic_table(rows: Iterable[SyntheticRow], fmt: str = "plain") -> str:
    """The rows as an aligned plain-text (``fmt="plain"``) or Markdown table."""
    return render_table(HEADERS, [list(r) for r in rows], fmt=fmt, digits=3)


def evaluate_synthetic(predictions: str | Path | Iterable[Mapping[str, Any]], encoding: str = "auto") -> EvalResult:
    """Score the synthetic test split: metrics ``<type>/<modality>/accuracy`` (and ``/chance``), ``accuracy``.

    A record without ``answer``, ``prediction``, a question type or a modality, and a second record for a key,
    are skipped and listed in ``skipped``.
    """
    source = str(predictions) if isinstance(predictions, str | Path) else "predictions"
    records = load_records(predictions, ["answer", "prediction"], encoding=encoding)
    usable = []
    for where, record in records.located():
        try:
            synthetic_fields(record, where)
        except EvalInputError as err:
            records.skip(where, record, "missing_field", str(err))
            continue
        usable.append(record)
    if not usable:
        raise EvalInputError(f"{source}: no usable prediction{records.skipped_hint()}")
    rows = synthetic_rows(usable)
    metrics: dict[str, float] = {}
    for r in rows:
        name = "" if r.question_type == "all" else f"{r.question_type}/{r.modality}/"
        metrics[f"{name}accuracy"] = r.accuracy
        if r.chance is not None:
            metrics[f"{name}chance"] = r.chance
    return EvalResult(
        protocol="synthetic",
        metrics=metrics,
        headers=list(HEADERS),
        rows=[list(r) for r in rows],
        config={"predictions": source, "match": "normalized-equal", "encoding": records.encoding},
        counts={"scored": rows[-1].n, "skipped": len(records.skipped)},
        skipped=records.skipped,
    )
