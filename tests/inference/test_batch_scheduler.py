"""The scheduler batches requests that arrive together; greedy answers equal generation one by one."""

from __future__ import annotations

import dataclasses

import pytest

from lvlm.inference.batch_generate import GenerationSettings, generate_ids
from lvlm.inference.batch_scheduler import BatchScheduler, SchedulerClosedError
from lvlm.inference.media_files import load_media
from lvlm.inference.prompts import prepare_prompt, question_conversation
from lvlm.models.generation.answer import Answer
from tests.waiting import wait_until


@pytest.fixture(scope="module")
def prompts(session, media_dir):
    image = load_media(session, "image", media_dir / "red.png")
    video = load_media(session, "video", media_dir / "right.mp4")
    items = [("what colour is the shape?", [("image", image)]), ("where does it move?", [("video", video)]),
             ("answer yes or no", [])]  # fmt: skip
    return [prepare_prompt(session, question_conversation(q, [session.modality(k) for k, _ in m]), m) for q, m in items]


def test_requests_arriving_together_share_one_batch(session, prompts):
    scheduler = BatchScheduler(session, max_batch_size=8, window_s=0.0, max_wait_s=30)
    scheduler.start()
    lengths = [3, 7, 5]  # each row keeps its own limit inside the shared batch
    with scheduler.arriving():  # a request still being prepared holds the batch back
        futures = [scheduler.submit(sample, Answer(GenerationSettings(n))) for sample, n in zip(prompts, lengths)]
    rows = [future.result(timeout=60) for future in futures]
    scheduler.close()
    assert max(scheduler.batch_sizes) == 3  # one prefill and the first steps ran all three rows at once
    assert scheduler.prefill_sizes == {3: 1}
    alone = [generate_ids(session, [sample], GenerationSettings(n))[0] for sample, n in zip(prompts, lengths)]
    assert [row.ids for row in rows] == alone
    assert [row.finish_reason for row in rows] == ["length"] * 3
    with pytest.raises(SchedulerClosedError):
        scheduler.submit(prompts[0], Answer(GenerationSettings(1)))


def test_sampled_and_seeded_requests_join_a_greedy_batch_and_answer_as_alone(session, prompts):
    scheduler = BatchScheduler(session, max_batch_size=8, window_s=0.0)
    scheduler.start()
    seeded = GenerationSettings(6, temperature=0.8, seed=1)
    first = scheduler.submit(prompts[0], Answer(GenerationSettings(30)))
    wait_until(lambda: scheduler.batch_sizes, "the greedy batch to start")
    sampled = scheduler.submit(prompts[1], Answer(seeded))
    rows = [first.result(timeout=60), sampled.result(timeout=60)]
    scheduler.close()
    assert max(scheduler.batch_sizes) == 2  # the seeded request joined the running greedy row
    assert rows[0].ids == generate_ids(session, prompts[:1], GenerationSettings(30))[0]
    assert rows[1].ids == generate_ids(session, prompts[1:2], seeded)[0]


@pytest.mark.parametrize("overlap", [True, False])
def test_joining_requests_are_prefilled_while_the_batch_runs_and_a_failed_prefill_fails_only_its_own(
    session, prompts, overlap
):
    scheduler = BatchScheduler(session, max_batch_size=8, window_s=0.0, overlap_prefill=overlap)
    scheduler.start()
    first = scheduler.submit(prompts[2], Answer(GenerationSettings(60)))
    wait_until(lambda: scheduler.batch_sizes, "the first request to start decoding")
    image = prompts[0].media[0]
    broken = dataclasses.replace(prompts[0], media=[(image[0], image[1][:, :3, :3])])  # too small for the tower
    failed = scheduler.submit(broken, Answer(GenerationSettings(5)))
    with pytest.raises(ValueError, match=r"Input image size \(3\*3\) doesn't match model"):  # this request only
        failed.result(timeout=60)
    later = scheduler.submit(prompts[1], Answer(GenerationSettings(6)))
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
        futures = [scheduler.submit(p, Answer(GenerationSettings(4))) for p in prompts]
    rows = [future.result(timeout=60) for future in futures]
    scheduler.close()
    assert scheduler.prefill_sizes == {1: 3}  # image, then video, then text: each pass within the budget
    alone = [generate_ids(session, [p], GenerationSettings(4))[0] for p in prompts]
    assert [row.ids for row in rows] == alone
