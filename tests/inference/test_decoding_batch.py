"""Rows joining a running batch mid-way and leaving early answer exactly as they would alone."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import torch

from lvlm.inference.batch_generate import GenerationSettings, collate_for_generation, generate_ids, media_inputs
from lvlm.inference.media_files import load_media
from lvlm.inference.prompts import prepare_prompt, question_conversation
from lvlm.models.generation.answer import Answer
from lvlm.models.generation.decoding_batch import DecodingBatch
from lvlm.models.generation.kv_cache import RowCacheLayer, leaving_order


def running_batch(session, finished, max_rows: int = 8) -> DecodingBatch:
    return DecodingBatch(session.model, session.tokenizer, session.max_length, finished.append, max_rows=max_rows)


def prefill(session, batch: DecodingBatch, samples):
    inputs = collate_for_generation(session, samples)
    return batch.prefill(inputs["input_ids"], inputs["attention_mask"], media_inputs(session, inputs))


def answers(settings) -> list[Answer]:
    return [Answer(s) for s in settings]


def test_rows_join_and_leave_a_running_batch(session, media_dir):
    image = load_media(session, "image", media_dir / "blue.jpg")
    video = load_media(session, "video", media_dir / "other.mp4")
    items = [("describe the video and the picture", [("video", video), ("image", image)]),
             ("answer yes or no", []), ("what colour is the shape?", [("image", image)])]  # fmt: skip
    samples = [
        prepare_prompt(session, question_conversation(q, [session.modality(k) for k, _ in m]), m) for q, m in items
    ]
    limits = [7, 9, 8]  # the longest prompt leaves first: the others' left padding is then cut
    seeded = GenerationSettings(9, temperature=1.0, seed=5)  # a seeded row among greedy ones
    rows = answers([GenerationSettings(7), seeded, GenerationSettings(8)])
    finished: list[int] = []
    batch = running_batch(session, finished)
    batch.join(prefill(session, batch, samples[:1]), rows[:1], [0])
    for _ in range(4):
        batch.step()
    batch.join(prefill(session, batch, samples[1:]), rows[1:], [1, 2])  # two shorter prompts join, 5 tokens in
    widths = []
    while len(batch):
        batch.step()
        widths.append(batch.mask.shape[1])
    alone = [generate_ids(session, [s], GenerationSettings(n))[0] for s, n in zip(samples, limits)]
    assert [rows[0].ids, rows[2].ids] == [alone[0], alone[2]]
    assert rows[1].ids == generate_ids(session, samples[1:2], seeded)[0] != alone[1]
    assert finished == [0, 2, 1]  # each answered as soon as it was done, not when the batch ended
    assert any(after < before for before, after in zip(widths, widths[1:]))  # padding columns trimmed


def test_prefill_on_another_thread_while_rows_step_and_wider_prompts_join(session, media_dir):
    image = load_media(session, "image", media_dir / "red.png")
    video = load_media(session, "video", media_dir / "right.mp4")
    items = [("answer yes or no", []), ("what colour is the shape?", [("image", image)]),
             ("where does the square move?", [("video", video)]), ("and the picture?", [("image", image)])]  # fmt: skip
    samples = [
        prepare_prompt(session, question_conversation(q, [session.modality(k) for k, _ in m]), m) for q, m in items
    ]
    limits = [12, 3, 6, 5]
    rows = answers([GenerationSettings(n) for n in limits])
    finished: list[int] = []
    batch = running_batch(session, finished, max_rows=2)
    batch.join(prefill(session, batch, samples[:2]), rows[:2], [0, 1])
    with ThreadPoolExecutor(1) as other_thread:
        pending = other_thread.submit(prefill, session, batch, samples[2:3])  # far longer than the batch's
        steps = 0
        while not pending.done() or steps < 2:  # the batch goes on stepping meanwhile; row 1 leaves after 3 tokens
            batch.step()
            steps += 1
        joining = pending.result()
        assert joining.mask.shape[1] > batch.mask.shape[1]  # it joins wider than the rows so far
        batch.join(joining, rows[2:3], [2])
    assert 1 in finished and len(batch) == 2  # row 1 left; its place went to the last row
    assert batch.owners == [0, 2] and batch.cache.layers[0].keys.shape[0] == 2
    batch.join(prefill(session, batch, samples[3:]), rows[3:], [3])  # more rows than max_rows: the cache grows
    while len(batch):
        batch.step()
    alone = [generate_ids(session, [sample], GenerationSettings(n))[0] for sample, n in zip(samples, limits)]
    assert [row.ids for row in rows] == alone
    assert sorted(finished) == [0, 1, 2, 3]


def test_rows_join_after_the_cache_grew_during_steps(session):
    """A step that runs out of columns grows the cache under inference mode; a later join writes into it in place
    (``lvlm serve`` with long answers failed here)."""
    samples = [prepare_prompt(session, question_conversation(q, []), []) for q in ("answer yes or no", "and why?")]
    rows = answers([GenerationSettings(90), GenerationSettings(5)])
    batch = running_batch(session, [], max_rows=2)
    batch.join(prefill(session, batch, samples[:1]), rows[:1], [0])
    room = batch.cache.layers[0].buffers[0].shape[2]
    while len(batch) and batch.cache.layers[0].buffers[0].shape[2] == room:
        batch.step()
    assert batch.cache.layers[0].buffers[0].is_inference() and len(batch) == 1
    batch.join(prefill(session, batch, samples[1:]), rows[1:], [1])
    while len(batch):
        batch.step()
    alone = [generate_ids(session, [sample], row.settings)[0] for sample, row in zip(samples, rows)]
    assert [row.ids for row in rows] == alone


def test_an_abandoned_batch_starts_afresh_with_the_next_rows(session):
    samples = [prepare_prompt(session, question_conversation(q)) for q in ("answer yes or no", "describe this clip")]
    batch = running_batch(session, [])
    batch.join(prefill(session, batch, samples[:1]), answers([GenerationSettings(8)]))
    batch.step()
    batch.abandon()  # what the scheduler does when a join fails and the cache is in doubt
    assert len(batch) == 0 and batch.cache is None
    row = Answer(GenerationSettings(6))
    batch.join(prefill(session, batch, samples[1:]), [row])
    while len(batch):
        batch.step()
    assert row.ids == generate_ids(session, samples[1:], GenerationSettings(6))[0]


def test_the_cache_grows_in_place_and_leaving_rows_move_least():
    assert leaving_order(5, [1, 4]) == [0, 3, 2]  # row 3 takes row 1's place; rows 0 and 2 stay
    layer = RowCacheLayer()
    keys = torch.arange(2 * 3 * 4, dtype=torch.float).view(2, 1, 3, 4)
    layer.update(keys, -keys)
    buffers = layer.buffers
    for step in range(5):
        new_keys, _ = layer.update(torch.full((2, 1, 1, 4), float(step)), torch.zeros(2, 1, 1, 4))
    assert layer.buffers is buffers  # steps wrote into the room, nothing was copied
    assert torch.equal(new_keys[:, :, :3], keys) and new_keys.shape == (2, 1, 8, 4)
    assert layer.get_seq_length() == 8 and layer.get_mask_sizes(1) == (9, 0)
