"""Rows joining a running batch mid-way and leaving early answer exactly as ``generate`` does one by one."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import torch

from lvlm.inference.answer_rows import AnswerRow
from lvlm.inference.batch_generate import GenerationSettings, generate_ids
from lvlm.inference.continuous_batch import RunningBatch
from lvlm.inference.media_loading import load_media
from lvlm.inference.prompts import prepare_prompt, question_conversation


def test_rows_join_and_leave_a_running_batch(session, media_dir):
    image = load_media(session, "image", media_dir / "blue.jpg")
    video = load_media(session, "video", media_dir / "other.mp4")
    items = [("describe the video and the picture", [("video", video), ("image", image)]),
             ("answer yes or no", []), ("what colour is the shape?", [("image", image)])]  # fmt: skip
    samples = [
        prepare_prompt(session, question_conversation(q, [session.modality(k) for k, _ in m]), m) for q, m in items
    ]
    limits = [7, 9, 8]  # the longest prompt leaves first: the others' left padding is then cut
    rows = [AnswerRow(n) for n in limits]
    finished: list[int] = []
    batch = RunningBatch(session, GenerationSettings(), threading.Lock(), finished.append)
    batch.admit(samples[:1], rows[:1], [0])
    for _ in range(4):
        batch.step()
    batch.admit(samples[1:], rows[1:], [1, 2])  # two shorter prompts join the longer one, 5 tokens in
    widths = []
    while len(batch):
        batch.step()
        widths.append(batch.mask.shape[1])
    alone = [generate_ids(session, [sample], GenerationSettings(n))[0] for sample, n in zip(samples, limits)]
    assert [row.ids for row in rows] == alone
    assert finished == [0, 2, 1]  # each answered as soon as it was done, not when the batch ended
    assert any(after < before for before, after in zip(widths, widths[1:]))  # padding columns trimmed


def test_sampled_rows_follow_the_warpers_and_never_emit_placeholders(session):
    samples = [prepare_prompt(session, question_conversation(q)) for q in ("answer yes or no", "describe this clip")]
    torch.manual_seed(0)
    rows = [AnswerRow(16), AnswerRow(16)]
    batch = RunningBatch(session, GenerationSettings(temperature=1.5, top_p=0.9), threading.Lock(), lambda _: None)
    assert [type(w).__name__ for w in batch.warpers] == ["TemperatureLogitsWarper", "TopPLogitsWarper"]
    batch.admit(samples, rows, [0, 1])
    while len(batch):
        batch.step()
    emitted = {token for row in rows for token in row.ids}
    assert emitted and not emitted & set(session.model.placeholder_ids)
    greedy = [generate_ids(session, [s], GenerationSettings(16))[0] for s in samples]
    assert [row.ids for row in rows] != greedy  # it really sampled


def test_prefill_on_another_thread_while_rows_step_and_wider_prompts_join(session, media_dir):
    image = load_media(session, "image", media_dir / "red.png")
    video = load_media(session, "video", media_dir / "right.mp4")
    items = [("answer yes or no", []), ("what colour is the shape?", [("image", image)]),
             ("where does the square move?", [("video", video)]), ("and the picture?", [("image", image)])]  # fmt: skip
    samples = [
        prepare_prompt(session, question_conversation(q, [session.modality(k) for k, _ in m]), m) for q, m in items
    ]
    limits = [12, 3, 6, 5]
    rows = [AnswerRow(n) for n in limits]
    finished: list[int] = []
    batch = RunningBatch(session, GenerationSettings(), threading.Lock(), finished.append, max_rows=2)
    batch.admit(samples[:2], rows[:2], [0, 1])
    with ThreadPoolExecutor(1) as other_thread:
        pending = other_thread.submit(batch.prefill, samples[2:3])  # the video prompt, far longer than the batch's
        steps = 0
        while not pending.done() or steps < 2:  # the batch goes on stepping meanwhile; row 1 leaves after 3 tokens
            batch.step()
            steps += 1
        prefill = pending.result()
        assert prefill.mask.shape[1] > batch.mask.shape[1]  # it joins wider than the rows so far
        batch.join(prefill, rows[2:3], [2])
    assert 1 in finished and len(batch) == 2  # row 1 left; its place went to the last row
    assert batch.owners == [0, 2] and batch.cache.layers[0].keys.shape[0] == 2
    batch.admit(samples[3:], rows[3:], [3])  # more rows than max_rows: the cache makes room
    while len(batch):
        batch.step()
    alone = [generate_ids(session, [sample], GenerationSettings(n))[0] for sample, n in zip(samples, limits)]
    assert [row.ids for row in rows] == alone
    assert sorted(finished) == [0, 1, 2, 3]


def test_an_abandoned_batch_starts_afresh_with_the_next_rows(session):
    samples = [prepare_prompt(session, question_conversation(q)) for q in ("answer yes or no", "describe this clip")]
    batch = RunningBatch(session, GenerationSettings(), threading.Lock(), lambda _: None)
    batch.admit(samples[:1], [AnswerRow(8)], [0])
    batch.step()
    batch.abandon()  # what the scheduler does when a join fails and the cache is in doubt
    assert len(batch) == 0 and batch.cache is None
    row = AnswerRow(6)
    batch.admit(samples[1:], [row], [1])
    while len(batch):
        batch.step()
    assert row.ids == generate_ids(session, samples[1:], GenerationSettings(6))[0]
