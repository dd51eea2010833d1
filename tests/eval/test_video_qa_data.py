"""The released video-QA files: pairing by question_id, missing videos, ActivityNet's v_ prefix."""

import json

import pytest

from lvlm.eval.records import EvalInputError
from lvlm.eval.video_qa_data import load_video_qa


def write(path, data):
    path.write_text(json.dumps(data))
    return path


def test_pairs_by_question_id_not_position(tmp_path):
    q = write(tmp_path / "test_q.json", [{"video_name": "v1", "question": "what?", "question_id": "q1"},
                                         {"video_name": "v2", "question": "who?", "question_id": "q2"}])  # fmt: skip
    # answers in the other order, as a merge of per-GPU chunks can leave them
    a = write(tmp_path / "test_a.json", [{"answer": "a man", "type": 3, "question_id": "q2"},
                                         {"answer": "dance", "type": 1, "question_id": "q1"}])  # fmt: skip
    items = load_video_qa(q, a)
    assert [(i.question_id, i.question, i.answer, i.video_path) for i in items] == [
        ("q1", "what?", "dance", None),
        ("q2", "who?", "a man", None),
    ]


def test_answer_missing_for_an_id(tmp_path):
    q = write(tmp_path / "test_q.json", [{"video_name": "v1", "question": "what?", "question_id": 1}])
    a = write(tmp_path / "test_a.json", [{"answer": "x", "question_id": 2}])
    with pytest.raises(EvalInputError, match=r"test_a.json: no answer for 1 question_ids"):
        load_video_qa(q, a)


def test_position_only_without_ids_and_length_check(tmp_path):
    q = write(tmp_path / "test_q.json", [{"video_name": "v1", "question": "what?"}])
    a = write(tmp_path / "test_a.json", [{"answer": "x"}])
    assert load_video_qa(q, a)[0].answer == "x"
    write(a, [{"answer": "x"}, {"answer": "y"}])
    with pytest.raises(EvalInputError, match="has 1 questions but .* has 2 answers"):
        load_video_qa(q, a)


def test_videos_with_extensions_and_activitynet_prefix(tmp_path):
    videos = tmp_path / "all_test"
    videos.mkdir()
    (videos / "v_abc.mp4").write_bytes(b"")
    (videos / "v_def.webm").write_bytes(b"")
    q = write(tmp_path / "test_q.json", [{"video_name": "abc", "question": "q?", "question_id": 0},
                                         {"video_name": "def", "question": "q?", "question_id": 1}])  # fmt: skip
    a = write(tmp_path / "test_a.json", [{"answer": "x", "question_id": 0}, {"answer": "y", "question_id": 1}])
    items = load_video_qa(q, a, videos_dir=videos, dataset="activitynet")
    assert [i.video_path.name for i in items] == ["v_abc.mp4", "v_def.webm"]
    with pytest.raises(EvalInputError, match=r"test_q.json: 2 of 2 videos not found"):
        load_video_qa(q, a, videos_dir=videos, dataset="msvd")  # no prefix: abc.* does not exist


def test_missing_videos_are_all_counted(tmp_path):
    videos = tmp_path / "videos"
    videos.mkdir()
    (videos / "a.avi").write_bytes(b"")
    q = write(tmp_path / "test_q.json", [{"video_name": n, "question": "q?", "question_id": i}
                                         for i, n in enumerate(["a", "b", "c", "b"])])  # fmt: skip
    a = write(tmp_path / "test_a.json", [{"answer": "x", "question_id": i} for i in range(4)])
    with pytest.raises(EvalInputError, match=r"2 of 3 videos not found in .*videos .*first missing: \['b', 'c'\]"):
        load_video_qa(q, a, videos_dir=videos)
