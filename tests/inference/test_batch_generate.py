"""Batched greedy generation equals one-by-one generation; settings never sample at temperature 0."""

from __future__ import annotations

import pytest

from lvlm.inference.batch_generate import GenerationSettings, _until_eos, decode_answer, generate_batch, generate_ids
from lvlm.inference.media_loading import load_media
from lvlm.inference.prompts import prepare_prompt, question_conversation


@pytest.fixture(scope="module")
def mixed_prompts(session, media_dir):
    image = load_media(session, "image", media_dir / "red.png")
    blue = load_media(session, "image", media_dir / "blue.jpg")
    video = load_media(session, "video", media_dir / "right.mp4")
    other = load_media(session, "video", media_dir / "other.mp4")
    items = [
        ("what colour is the shape?", [("image", image)]),
        ("where does the square move?", [("video", video)]),
        ("answer yes or no", []),
        ("describe the video and the picture", [("image", blue), ("video", other)]),
        ("what colour is the small object on the background?", [("image", blue)]),
    ]
    return [
        prepare_prompt(session, question_conversation(q, [k for k, _ in media]), media, key=str(i))
        for i, (q, media) in enumerate(items)
    ]


def test_batched_equals_one_by_one(session, mixed_prompts):
    settings = GenerationSettings(max_new_tokens=6)
    batched = generate_ids(session, mixed_prompts, settings)
    single = [generate_ids(session, [sample], settings)[0] for sample in mixed_prompts]
    assert batched == single
    assert len({tuple(ids) for ids in batched}) > 1  # the prompts really differ
    assert generate_batch(session, mixed_prompts[:2], settings) == [
        session.tokenizer.decode(ids, skip_special_tokens=True).strip() for ids in single[:2]
    ]


def test_answers_stop_at_eos_and_skip_special_tokens(session):
    tok = session.tokenizer
    words = tok("red square", add_special_tokens=False)["input_ids"]
    row = [*words, tok.convert_tokens_to_ids("<image>"), tok.eos_token_id, *words]
    cut = _until_eos(row, tok.eos_token_id)
    assert cut == row[: len(words) + 1]
    assert decode_answer(session, [tok.bos_token_id, *cut]) == "red square"


def test_temperature_zero_is_greedy_never_sampling():
    assert GenerationSettings(temperature=0).generate_kwargs() == {"max_new_tokens": 128, "do_sample": False}
    sampled = GenerationSettings(temperature=0.2, top_p=0.9).generate_kwargs()
    assert sampled["do_sample"] is True and sampled["temperature"] == 0.2 and sampled["top_p"] == 0.9
    with pytest.raises(ValueError, match="temperature"):
        GenerationSettings(temperature=-1)


def test_seeded_sampling_is_reproducible(session, mixed_prompts):
    settings = GenerationSettings(max_new_tokens=4, temperature=1.0, seed=3)
    assert generate_ids(session, mixed_prompts[:2], settings) == generate_ids(session, mixed_prompts[:2], settings)
