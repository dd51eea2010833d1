"""Synthetic-world table: accuracy per question type x modality next to chance = 1/len(choices)."""

import pytest

from lvlm.eval.records import EvalInputError
from lvlm.eval.synthetic_qa import SyntheticRow, evaluate_synthetic, render_synthetic_table, synthetic_rows

COUNTS = ["1", "2", "3", "4"]
COLORS = ["red", "green", "blue", "yellow", "purple"]


def record(key, question_type, modality, choices, answer, prediction):
    return {"key": key, "question_type": question_type, "modality": modality, "choices": choices,
            "answer": answer, "prediction": prediction}  # fmt: skip


RECORDS = [
    record("a", "count", "image", COUNTS, "2", "two"),
    record("b", "count", "image", COUNTS, "3", "4"),
    record("c", "color", "video", COLORS, "red", "Red."),
    record("d", "color", "video", COLORS, "blue", "blue"),
    record("e", "color", "video", COLORS, "green", "a green circle"),  # exact match only: a longer answer is wrong
    record("f", "color", "image", ["yes", "no"], "yes", "yes"),
]


def test_rows_hand_computed():
    rows = synthetic_rows(RECORDS)
    assert rows == [
        SyntheticRow("color", "image", 1, 1.0, 0.5),
        SyntheticRow("color", "video", 3, pytest.approx(2 / 3), pytest.approx(0.2)),
        SyntheticRow("count", "image", 2, 0.5, 0.25),
        # all: 4 right of 6; chance (0.5 + 3 * 0.2 + 2 * 0.25) / 6 = 1.6 / 6
        SyntheticRow("all", "all", 6, pytest.approx(4 / 6), pytest.approx(1.6 / 6)),
    ]


def test_tables():
    rows = synthetic_rows(RECORDS)
    plain = render_synthetic_table(rows).splitlines()
    assert plain[0].split() == ["question_type", "modality", "n", "accuracy", "chance"]
    assert plain[2].split() == ["color", "image", "1", "1.000", "0.500"]
    markdown = render_synthetic_table(rows, fmt="markdown").splitlines()
    assert markdown[3] == "| color | video | 3 | 0.667 | 0.200 |"


def test_evaluate_synthetic_metrics_and_errors():
    result = evaluate_synthetic(RECORDS)
    assert result.metrics["count/image/accuracy"] == 0.5
    assert result.metrics["accuracy"] == pytest.approx(4 / 6)
    with pytest.raises(
        EvalInputError, match=r"no usable prediction .*predictions\[0\] \(key '\w+'\): missing field 'modality'"
    ):
        evaluate_synthetic([{k: v for k, v in RECORDS[0].items() if k != "modality"}])


def test_shard_style_records_and_questions_without_choices():
    # as `lvlm predict` passes a synthetic shard sample through: the answered question is the last one
    meta = {"modality": "video", "question_types": ["shape", "color"], "choices": {"color": COLORS, "shape": []}}
    text = {"key": "t", "answer": "four", "prediction": "4", "meta": {"modality": "text", "question_types": ["text"]}}
    rows = synthetic_rows([{"key": "v", "answer": "red", "prediction": "red", "meta": meta}, text])
    assert rows == [
        SyntheticRow("color", "video", 1, 1.0, 0.2),
        SyntheticRow("text", "text", 1, 1.0, None),  # open question: no chance level
        SyntheticRow("all", "all", 2, 1.0, None),
    ]
    assert render_synthetic_table(rows).splitlines()[3].split() == ["text", "text", "1", "1.000"]
