"""VQAv2 soft accuracy and answer normalisation, against hand-computed cases."""

import json

import pytest

from lvlm.eval.records import EvalInputError
from lvlm.eval.vqa_accuracy import evaluate_vqa, vqa_soft_accuracy
from lvlm.eval.vqa_normalize import normalize_vqa_answer

NUMBER_REFS = ["2", "2"] + ["3"] * 8
COLOR_REFS = ["red"] * 3 + ["blue"] * 7


@pytest.mark.parametrize(
    ("text", "normalized"),
    [
        ("Yes.", "yes"),
        ("Two dogs!", "2 dogs"),
        ("black/white", "black white"),  # a mark inside a word becomes a space
        ("1,000 people.", "1000 people"),  # digit,digit: every mark is deleted
        ("It is 2.5 m.", "it is 2.5 m"),  # a period before a digit stays
        ("The cat", "cat"),
        ("dont know", "don't know"),
        ("none", "0"),
    ],
)
def test_normalization(text, normalized):
    assert normalize_vqa_answer(text) == normalized


def test_soft_accuracy_hand_computed():
    # ten "yes": every leave-one-out subset has 9 matches -> min(9/3, 1) = 1
    assert vqa_soft_accuracy("Yes.", ["yes"] * 10) == pytest.approx(1.0)
    # "two" -> "2": dropping a "2" leaves 1 match (1/3), dropping a "3" leaves 2 (2/3): (2*1/3 + 8*2/3)/10 = 0.6
    assert vqa_soft_accuracy("two", NUMBER_REFS) == pytest.approx(0.6)
    # three humans said red: dropping a red leaves 2 (2/3), dropping a blue leaves 3 (1): (3*2/3 + 7*1)/10 = 0.9
    assert vqa_soft_accuracy("red", COLOR_REFS) == pytest.approx(0.9)
    assert vqa_soft_accuracy("green", COLOR_REFS) == 0.0
    assert vqa_soft_accuracy("The dog.", ["dog"]) == 1.0  # a single reference is plain exact match


def test_evaluate_vqa_per_answer_type(tmp_path):
    annotations = {
        "annotations": [
            {"question_id": 1, "answer_type": "yes/no", "answers": [{"answer": "yes"}] * 10},
            {"question_id": 2, "answer_type": "number", "answers": [{"answer": a} for a in NUMBER_REFS]},
            {"question_id": 3, "answer_type": "other", "answers": COLOR_REFS},
        ]
    }
    ann = tmp_path / "ann.json"
    ann.write_text(json.dumps(annotations))
    preds = [{"key": "1", "question_id": 1, "prediction": "Yes."}, {"key": "2", "question_id": 2, "prediction": "two"},
             {"key": "3", "question_id": 3, "prediction": "red"}]  # fmt: skip
    result = evaluate_vqa(preds, ann)
    # (1.0 + 0.6 + 0.9) / 3
    assert result.metrics["accuracy"] == pytest.approx(2.5 / 3)
    assert result.metrics["number/accuracy"] == pytest.approx(0.6)
    assert result.rows[0] == ["all", 3, pytest.approx(2.5 / 3)]
    with pytest.raises(EvalInputError, match="2 questions of .*ann.json have no prediction"):
        evaluate_vqa(preds[:1], ann)
    with pytest.raises(EvalInputError, match="question_id '9' is not in"):
        evaluate_vqa([{"question_id": 9, "prediction": "x"}], ann)


def test_bad_annotation_names_file_and_field(tmp_path):
    ann = tmp_path / "ann.json"
    ann.write_text(json.dumps([{"question_id": 1, "answers": []}]))
    with pytest.raises(EvalInputError, match=r"ann.json: entry 0 \(question_id 1\): field 'answers'"):
        evaluate_vqa([{"question_id": 1, "prediction": "x"}], ann)
