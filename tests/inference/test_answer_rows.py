"""Per-row stopping inside a batch: stop strings across tokens, own length limits, streamed text deltas."""

from __future__ import annotations

import threading

import torch

from lvlm.inference.answer_rows import AnswerRow, RowTracker, _visible

LOCK = threading.Lock()


def feed(session, row: AnswerRow, text: str) -> list[int]:
    ids = session.tokenizer(text, add_special_tokens=False)["input_ids"]
    for token in ids:
        if row.finish_reason is None:
            row.step(token, session.tokenizer, LOCK)
    return ids


def test_stop_string_split_over_tokens_is_never_streamed(session):
    pieces: list[str] = []
    row = AnswerRow(max_tokens=50, stop=["square moves"], on_text=pieces.append)
    feed(session, row, " red circle and square moves left")
    assert (row.text, row.finish_reason) == ("red circle and", "stop")
    assert "".join(pieces) == "red circle and" and len(pieces) > 1


def test_own_limit_and_end_of_sequence(session):
    row = AnswerRow(max_tokens=2)
    ids = feed(session, row, " red square moves left")
    assert (row.ids, row.finish_reason) == (ids[:2], "length")
    assert row.text == session.tokenizer.decode(ids[:2], skip_special_tokens=True).strip()
    ended = AnswerRow(max_tokens=10)
    feed(session, ended, " red")
    ended.step(session.tokenizer.eos_token_id, session.tokenizer, LOCK)
    assert (ended.text, ended.finish_reason) == ("red", "stop")


def test_visible_text_holds_back_what_may_change():
    assert _visible("red squ", ["square"]) == "red"  # "squ" may start the stop string
    assert _visible("red \ufffd", []) == "red"
    assert _visible("red square ", []) == "red square"


def test_tracker_reports_done_rows_and_tells_as_they_finish(session):
    tok = session.tokenizer
    words = tok(" red blue green", add_special_tokens=False)["input_ids"]
    rows = [AnswerRow(max_tokens=1), AnswerRow(max_tokens=3)]
    finished: list[int] = []
    tracker = RowTracker(rows, tok, LOCK, on_finish=finished.append)
    prompt = torch.ones(2, 4, dtype=torch.long)
    done = [tracker(torch.cat([prompt, torch.tensor([words[: i + 1]] * 2)], dim=1)).tolist() for i in range(3)]
    assert done == [[True, False], [True, False], [True, True]]
    assert finished == [0, 1] and rows[1].ids == words
