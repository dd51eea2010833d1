"""One prompt through the static cache, eager and compiled, gives transformers' greedy tokens and the batch path's
answers (stop strings, streaming, seeded samples)."""

from __future__ import annotations

import pytest

from lvlm.inference.batch_generate import collate_for_generation, generate
from lvlm.models.generation.answer import Answer
from lvlm.models.generation.settings import GenerationSettings
from lvlm.models.generation.static_decoding import StaticDecoder, bucket_size
from tests.inference import seeded_run
from tests.inference.test_batch_generate import reference_ids


@pytest.fixture(scope="module")
def mixed_prompts(session, media_dir):
    return seeded_run.mixed_prompts(session, media_dir)


def answer_alone(session, decoder, sample, settings, on_text=None) -> Answer:
    return generate(session, [sample], settings, on_text, decoder=decoder)[0]


@pytest.mark.parametrize("compile", [False, True], ids=["static", "compiled"])
def test_greedy_tokens_equal_transformers_generate(session, mixed_prompts, compile):
    decoder = StaticDecoder(session.model, session.tokenizer, session.max_length, compile=compile)
    for sample in mixed_prompts[:2] + mixed_prompts[:1]:  # the cache and the compiled graph are reused
        ids = answer_alone(session, decoder, sample, GenerationSettings(max_new_tokens=12)).ids
        assert ids == reference_ids(session, [sample], 12)[0]


def test_answers_equal_the_batch_path_with_stop_strings_streaming_and_seeds(session, mixed_prompts):
    decoder = StaticDecoder(session.model, session.tokenizer, session.max_length)
    batch_answer = generate(session, mixed_prompts[:1], GenerationSettings(max_new_tokens=16))[0]
    stop = batch_answer.text.split()[1] if len(batch_answer.text.split()) > 1 else batch_answer.text[-2:]
    for settings in (GenerationSettings(16, stop=(stop,)), GenerationSettings(10, temperature=1.0, seed=5)):
        pieces: list[str] = []
        alone = answer_alone(session, decoder, mixed_prompts[0], settings, pieces.append)
        batched = generate(session, mixed_prompts[:1], settings)[0]
        assert (alone.ids, alone.text, alone.finish_reason) == (batched.ids, batched.text, batched.finish_reason)
        assert "".join(pieces) == alone.text


def test_a_prompt_near_the_models_end_stops_at_its_positions(session, mixed_prompts):
    batch = collate_for_generation(session, mixed_prompts[:1])
    length = int(batch["attention_mask"].sum())
    decoder = StaticDecoder(session.model, session.tokenizer, max_length=length + 3)
    row = answer_alone(session, decoder, mixed_prompts[0], GenerationSettings(max_new_tokens=50))
    assert len(row.ids) <= 3 and list(decoder.caches) == [length + 3]


def test_buckets_are_half_octaves_more_than_two_thirds_full():
    sizes = [bucket_size(n, 4096) for n in range(1, 4097)]
    assert sorted(set(sizes)) == [128, 192, 256, 384, 512, 768, 1024, 1536, 2048, 3072, 4096]
    assert all(n <= size and (n <= 128 or n > size * 2 / 3) for n, size in enumerate(sizes, start=1))
    assert bucket_size(300, max_length=290) == 290 and bucket_size(5000, max_length=4096) == 4096
