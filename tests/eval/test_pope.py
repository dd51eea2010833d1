"""POPE: the LLaVA parser, torchmetrics scores and the prediction-based yes-ratio, against hand-computed values."""

import json

import pytest

from lvlm.eval.pope import evaluate_pope, parse_pope_answer
from lvlm.eval.records import EvalInputError

ADVERSARIAL = [("yes", "Yes, there is a dog."), ("yes", "There is not a cat in the image."), ("no", "No."),
               ("no", "Yes. But no dog is there."), ("yes", "Nope, it is there")]  # fmt: skip
POPULAR = [("yes", "yes"), ("no", "no"), ("no", "The answer is no."), ("no", "Not at all")]


def write_pope(tmp_path):
    preds = []
    for category, rows in (("adversarial", ADVERSARIAL), ("popular", POPULAR)):
        lines = [{"question_id": i + 1, "image": f"{i}.jpg", "text": "Is there a dog?", "label": label}
                 for i, (label, _) in enumerate(rows)]  # fmt: skip
        (tmp_path / f"coco_pope_{category}.json").write_text("".join(json.dumps(x) + "\n" for x in lines))
        preds += [{"key": f"{category}-{i + 1}", "question_id": i + 1, "category": category, "prediction": text}
                  for i, (_, text) in enumerate(rows)]  # fmt: skip
    path = tmp_path / "preds.jsonl"
    path.write_text("".join(json.dumps(p) + "\n" for p in preds))
    return path


@pytest.mark.parametrize(
    ("text", "parsed"),
    [
        ("Yes, there is a dog.", "yes"),
        ("No.", "no"),
        ("Yes. But no dog.", "yes"),  # only the first sentence counts
        ("There is not a cat", "no"),
        ("Not at all", "yes"),  # the original is case-sensitive: "Not" is not a "no" word
        ("Nope", "yes"),
        ("no, wait", "no"),  # commas are dropped before splitting
    ],
)
def test_parser_follows_llava(text, parsed):
    assert parse_pope_answer(text) == parsed


def test_pope_hand_computed(tmp_path):
    result = evaluate_pope(write_pope(tmp_path), questions_dir=tmp_path)
    m = result.metrics
    # adversarial: parsed yes, no, no, yes, yes vs labels yes, yes, no, no, yes -> TP 2 (q1, q5), FN 1 (q2),
    # TN 1 (q3), FP 1 (q4): acc 3/5, precision 2/3, recall 2/3, F1 2/3, yes-ratio (3 predicted yes)/5.
    assert m["adversarial/accuracy"] == pytest.approx(0.6)
    assert m["adversarial/precision"] == pytest.approx(2 / 3)
    assert m["adversarial/recall"] == pytest.approx(2 / 3)
    assert m["adversarial/f1"] == pytest.approx(2 / 3)
    assert m["adversarial/yes_ratio"] == pytest.approx(0.6)
    # popular: parsed yes, no, no, yes vs labels yes, no, no, no -> TP 1, TN 2, FP 1 (q4 "Not at all"), FN 0:
    # acc 3/4, precision 1/2, recall 1/1, F1 2*0.5*1/1.5 = 2/3, yes-ratio 2/4 (labels would give 1/4).
    assert m["popular/accuracy"] == pytest.approx(0.75)
    assert m["popular/precision"] == pytest.approx(0.5)
    assert m["popular/recall"] == pytest.approx(1.0)
    assert m["popular/f1"] == pytest.approx(2 / 3)
    assert m["popular/yes_ratio"] == pytest.approx(0.5)
    # mean of the two categories: acc (0.6+0.75)/2, precision (2/3+1/2)/2 = 7/12, recall (2/3+1)/2 = 5/6.
    assert m["mean/accuracy"] == pytest.approx(0.675)
    assert m["mean/precision"] == pytest.approx(7 / 12)
    assert m["mean/recall"] == pytest.approx(5 / 6)
    assert m["mean/f1"] == pytest.approx(2 / 3)
    assert m["mean/yes_ratio"] == pytest.approx(0.55)
    assert [r[:2] for r in result.rows] == [["adversarial", 5], ["popular", 4], ["mean", 9]]
    assert result.counts == {"scored": 9, "missing": 0, "skipped": 0}


def test_repeated_ids_need_a_category(tmp_path):
    path = write_pope(tmp_path)
    records = [json.loads(line) for line in path.read_text().splitlines()]
    for r in records:
        del r["category"]
    with pytest.raises(EvalInputError, match="add a 'category' field"):
        evaluate_pope(records, questions_dir=tmp_path)


def test_missing_prediction_is_an_error_unless_allowed(tmp_path):
    path = write_pope(tmp_path)
    records = [json.loads(line) for line in path.read_text().splitlines()][:-1]  # drop popular q4 (a FP)
    with pytest.raises(EvalInputError, match="1 of 4 questions in .*coco_pope_popular.json have no prediction"):
        evaluate_pope(records, questions_dir=tmp_path)
    result = evaluate_pope(records, questions_dir=tmp_path, allow_missing=True)
    # popular without q4: TP 1, TN 2 -> accuracy 3/3
    assert result.metrics["popular/accuracy"] == pytest.approx(1.0)
    assert result.counts["missing"] == 1


def test_no_question_files_names_the_folder(tmp_path):
    with pytest.raises(EvalInputError, match="no POPE question file found"):
        evaluate_pope([], questions_dir=tmp_path)


def test_allow_missing_leaves_out_an_unanswered_split(tmp_path):
    path = write_pope(tmp_path)
    records = [json.loads(line) for line in path.read_text().splitlines()]
    adversarial = [r for r in records if r["category"] == "adversarial"]
    result = evaluate_pope(adversarial, questions_dir=tmp_path, allow_missing=True)
    assert [row[0] for row in result.rows] == ["adversarial", "mean"]
    assert result.metrics["mean/accuracy"] == pytest.approx(0.6) and result.counts["missing"] == 4
