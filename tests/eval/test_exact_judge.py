"""The offline exact judge and the video-QA metrics, against hand-computed values."""

import json

import pytest

from lvlm.eval.judges import ExactMatchJudge, JudgeItem
from lvlm.eval.judges.exact import answers_match
from lvlm.eval.video_qa import evaluate_video_qa

RECORDS = [
    {"key": "0", "question": "what is the man doing?", "answer": "dancing", "prediction": "The man is dancing."},
    {"key": "1", "question": "how many dogs are there?", "answer": "two", "prediction": "2"},
    {"key": "2", "question": "what color is the car?", "answer": "red", "prediction": "blue"},
    {"key": "3", "question": "who sings?", "answer": "woman", "prediction": "a man sings"},
]


def test_answers_match():
    assert answers_match("The man is dancing.", "dancing")  # whole words inside the prediction
    assert answers_match("2", "two")  # number words -> digits
    assert not answers_match("a man sings", "woman")  # "man" is not "woman"
    assert not answers_match("The man is dancing.", "dancing", contains=False)
    assert answers_match("Dancing!", "dancing", contains=False)


def test_exact_judge_scores_five_or_zero():
    judge = ExactMatchJudge()
    assert judge.judge(JudgeItem("q", "dog", "a dog")).score == 5
    assert judge.judge(JudgeItem("q", "dog", "a cat")).pred == "no"


def test_video_qa_with_exact_judge_hand_computed(tmp_path):
    path = tmp_path / "preds.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in RECORDS))
    result = evaluate_video_qa(path, judge="exact")
    # yes, yes, no, no -> accuracy 2 / (2 + 2) = 0.5; score (5 + 5 + 0 + 0) / 4 = 2.5
    assert result.metrics == {"accuracy": 0.5, "score": 2.5}
    assert result.counts["yes"] == 2 and result.counts["no"] == 2 and result.counts["failed"] == 0
    assert result.config["judge"]["kind"] == "exact"
    assert [item["pred"] for item in result.items] == ["yes", "yes", "no", "no"]


def test_video_qa_answers_come_from_released_files_by_id(tmp_path):
    q = tmp_path / "test_q.json"
    a = tmp_path / "test_a.json"
    q.write_text(json.dumps([{"video_name": f"v{i}", "question": r["question"], "question_id": r["key"]}
                             for i, r in enumerate(RECORDS)]))  # fmt: skip
    # test_a.json in reverse order: a positional pairing would score 0 right
    a.write_text(json.dumps([{"answer": r["answer"], "question_id": r["key"]} for r in reversed(RECORDS)]))
    # predictions carry no reference answer and come in a chunked order (2, 3 then 0, 1)
    preds = [{"key": r["key"], "prediction": r["prediction"]} for r in RECORDS[2:] + RECORDS[:2]]
    result = evaluate_video_qa(preds, judge="exact", questions=q, answers=a)
    assert result.metrics == {"accuracy": 0.5, "score": 2.5}


def test_missing_reference_field_is_named(tmp_path):
    with pytest.raises(ValueError, match=r"no prediction to judge .*predictions\[0\]: missing field 'prediction'"):
        evaluate_video_qa([{"key": "0", "question": "q", "answer": "a"}], judge="exact")
    with pytest.raises(ValueError, match=r"predictions\[0\]: missing field 'answer'"):
        evaluate_video_qa([{"key": "0", "question": "q", "prediction": "a"}], judge="exact")
    result = evaluate_video_qa([{"key": "x", "question": "q", "prediction": "a"}, *RECORDS], judge="exact")
    assert result.metrics == {"accuracy": 0.5, "score": 2.5}  # the bad record is skipped, the others scored
    assert [(s["source"], s["key"], s["reason"]) for s in result.skipped] == [("predictions[0]", "x", "missing_field")]


def test_original_output_format_is_read():
    # Video-LLaVA's run_inference_video_qa.py writes {"id", "question", "answer", "pred"}
    original = [{"id": r["key"], "question": r["question"], "answer": r["answer"], "pred": r["prediction"]}
                for r in RECORDS]  # fmt: skip
    assert evaluate_video_qa(original, judge="exact").metrics == {"accuracy": 0.5, "score": 2.5}
