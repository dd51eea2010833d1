"""The scheduler batches requests that arrive together; greedy answers equal generation one by one."""

from __future__ import annotations

import dataclasses

import pytest
from lvlm.inference.answer_rows import AnswerRow

from lvlm.inference.batch_generate import GenerationSettings, generate_ids
from lvlm.inference.batch_scheduler import BatchScheduler, QueuedRequest, SchedulerClosedError
from lvlm.inference.media_loading import load_media
from lvlm.inference.prompts import prepare_prompt, question_conversation
from tests.waiting import wait_until


@pytest.fixture(scope="module")
def prompts(session, media_dir):
    image = load_media(session, "image", media_dir / "red.png")
    video = load_media(session, "video", media_dir / "right.mp4")
    items = [("what colour is the shape?", [("image", image)]), ("where does it move?", [("video", video)]),
             ("answer yes or no", [])]  # fmt: skip
    return [prepare_prompt(session, question_conversation(q, [k for k, _ in m]), m) for q, m in items]


def test_requests_arriving_together_share_one_batch(session, prompts):
    scheduler = BatchScheduler(session, max_batch_size=8, window_s=0.0, max_wait_s=30)
    scheduler.start()
    lengths = [3, 7, 5]  # each row keeps its own limit inside the shared batch
    with scheduler.arriving():  # a request still being prepared holds the batch back
        futures = [scheduler.submit(sample, GenerationSettings(n), AnswerRow(n)) for sample, n in zip(prompts, lengths)]
    rows = [future.result(timeout=60) for future in futures]
    scheduler.close()
    assert max(scheduler.batch_sizes) == 3  # one prefill and the first steps ran all three rows at once
    assert scheduler.prefill_sizes == {3: 1}
    alone = [generate_ids(session, [sample], GenerationSettings(n))[0] for sample, n in zip(prompts, lengths)]
    assert [row.ids for row in rows] == alone
    assert [row.finish_reason for row in rows] == ["length"] * 3
    with pytest.raises(SchedulerClosedError):
        scheduler.submit(prompts[0], GenerationSettings(1), AnswerRow(1))


def test_only_compatible_requests_share_a_batch(prompts):
    greedy = [QueuedRequest(prompts[0], GenerationSettings(4), AnswerRow(4)) for _ in range(2)]
    sampled = QueuedRequest(prompts[0], GenerationSettings(4, temperature=0.7), AnswerRow(4))
    seeded = [QueuedRequest(prompts[0], GenerationSettings(4, temperature=0.7, seed=1), AnswerRow(4)) for _ in "ab"]
    assert greedy[0].group() == greedy[1].group() != sampled.group()
    assert seeded[0].group() != seeded[1].group()  # a seed reproduces an answer only when it runs alone


def test_a_request_of_another_group_is_not_starved(session, prompts):
    scheduler = BatchScheduler(session, max_batch_size=8, window_s=0.0)
    scheduler.start()
    first = scheduler.submit(prompts[0], GenerationSettings(20), AnswerRow(20))
    wait_until(lambda: scheduler.batch_sizes, "the greedy batch to start")
    sampled = scheduler.submit(prompts[1], GenerationSettings(2, temperature=0.5, seed=1), AnswerRow(2))
    later = scheduler.submit(prompts[2], GenerationSettings(2), AnswerRow(2))  # greedy: could join, must not
    done_order: list[str] = []
    for name, future in (("first", first), ("sampled", sampled), ("later", later)):
        future.add_done_callback(lambda _, name=name: done_order.append(name))
    for future in (first, sampled, later):
        future.result(timeout=60)
    scheduler.close()
    assert done_order == ["first", "sampled", "later"]


@pytest.mark.parametrize("overlap", [True, False])
def test_joining_requests_are_prefilled_while_the_batch_runs_and_a_failed_prefill_fails_only_its_own(
    session, prompts, overlap
):
    scheduler = BatchScheduler(session, max_batch_size=8, window_s=0.0, overlap_prefill=overlap)
    scheduler.start()
    first = scheduler.submit(prompts[2], GenerationSettings(60), AnswerRow(60))
    wait_until(lambda: scheduler.batch_sizes, "the first request to start decoding")
    image = prompts[0].media[0]
    broken = dataclasses.replace(prompts[0], media=[(image[0], image[1][:, :3, :3])])  # too small for the tower
    failed = scheduler.submit(broken, GenerationSettings(5), AnswerRow(5))
    with pytest.raises(ValueError, match=r"Input image size \(3\*3\) doesn't match model"):  # this request only
        failed.result(timeout=60)
    later = scheduler.submit(prompts[1], GenerationSettings(6), AnswerRow(6))
    rows = [first.result(timeout=60), later.result(timeout=60)]
    scheduler.close()
    alone = [generate_ids(session, [prompts[i]], GenerationSettings(n))[0] for i, n in ((2, 60), (1, 6))]
    assert [row.ids for row in rows] == alone
    assert rows[0].finish_reason == "length" and len(rows[0].ids) == 60


def test_prefills_stay_within_their_token_budget(session, prompts):
    lengths = [int(p.input_ids.shape[0]) for p in prompts]
    assert max(lengths) == lengths[1]  # the video prompt is the longest
    budget = 2 * lengths[1] - 1  # it fits alone, and no other request fits with it
    scheduler = BatchScheduler(session, max_batch_size=8, window_s=0.0, max_wait_s=30, prefill_tokens=budget)
    scheduler.start()
    with scheduler.arriving():  # all three are queued before the batch starts
        futures = [scheduler.submit(p, GenerationSettings(4), AnswerRow(4)) for p in prompts]
    rows = [future.result(timeout=60) for future in futures]
    scheduler.close()
    assert scheduler.prefill_sizes == {1: 3}  # image, then video, then text: each pass within the budget
    alone = [generate_ids(session, [p], GenerationSettings(4))[0] for p in prompts]
    assert [row.ids for row in rows] == alone
