"""Answer scoring: the sum of the answer's log-probabilities equals a plain forward pass; greedy answers are greedy."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from lvlm.data.sample_errors import SampleTooLongError
from lvlm.data.templates import GPT
from lvlm.data.tokenization import IGNORE_INDEX
from lvlm.inference.batch_generate import GenerationSettings, generate_ids
from lvlm.inference.media_files import load_media
from lvlm.inference.prompts import prepare_prompt, prepare_scoring_prompt, question_conversation
from lvlm.inference.scoring import score_answers
from tests.inference.scoring_reference import reference_logprob


def scoring_sample(session, question, kinds, media, answer, key="s"):
    conversation = [
        *question_conversation(question, [session.modality(k) for k in kinds]),
        {"from": GPT, "value": answer},
    ]
    return prepare_scoring_prompt(session, conversation, media, key=key)


@pytest.fixture(scope="module")
def items(session, media_dir):
    image = load_media(session, "image", media_dir / "red.png")
    video = load_media(session, "video", media_dir / "right.mp4")
    return [
        ("what colour is the shape?", ["image"], [("image", image)], "red"),
        ("where does the square move?", ["video"], [("video", video)], "it moves left"),
        ("answer yes or no", [], [], "yes"),
    ]


def test_labels_mark_the_answer_without_its_eos(session, items):
    question, kinds, media, answer = items[1]
    sample = scoring_sample(session, question, kinds, media, answer)
    scored = sample.input_ids[sample.labels != IGNORE_INDEX].tolist()
    assert scored == session.tokenizer(" " + answer, add_special_tokens=False)["input_ids"]
    assert sample.input_ids[-1] == session.tokenizer.eos_token_id  # the EOS is in the sequence, not scored


def test_scores_equal_a_plain_forward_pass_batched_or_not(session, items):
    samples = [scoring_sample(session, q, k, m, a, key=str(i)) for i, (q, k, m, a) in enumerate(items)]
    batched = score_answers(session, samples)
    single = [score_answers(session, [sample])[0] for sample in samples]
    for (question, kinds, media, answer), b, s in zip(items, batched, single):
        answer_ids = session.tokenizer(" " + answer, add_special_tokens=False)["input_ids"]
        logprob, greedy = reference_logprob(session, question, kinds, media, answer_ids)
        assert b.tokens == s.tokens == len(answer_ids)
        assert b.logprob == pytest.approx(logprob, abs=1e-4) and s.logprob == pytest.approx(logprob, abs=1e-4)
        assert b.is_greedy == s.is_greedy == greedy
        assert b.logprob < 0


def test_the_greedy_continuation_is_greedy_and_beats_a_changed_one(session, items):
    question, kinds, media, _ = items[0]
    prompt = prepare_prompt(session, question_conversation(question, [session.modality(k) for k in kinds]), media)
    greedy = generate_ids(session, [prompt], GenerationSettings(max_new_tokens=3))[0]
    changed = [*greedy[:-1], (greedy[-1] + 1) % session.model.placeholder_ids[0]]

    def with_answer(ids):
        labels = torch.cat([torch.full_like(prompt.input_ids, IGNORE_INDEX), torch.tensor(ids)])
        return replace(prompt, input_ids=torch.cat([prompt.input_ids, torch.tensor(ids)]), labels=labels)

    scores = score_answers(session, [with_answer(greedy), with_answer(changed)])
    assert scores[0].is_greedy and not scores[1].is_greedy
    assert scores[0].logprob > scores[1].logprob and scores[0].tokens == 3


def test_an_answer_that_does_not_fit_is_refused(session, items):
    question, kinds, media, _ = items[1]
    with pytest.raises(SampleTooLongError, match="positions"):
        scoring_sample(session, question, kinds, media, "red " * 200)


def test_pil_images_load_like_their_files(session, media_dir):
    from PIL import Image

    with Image.open(media_dir / "blue.jpg") as image:
        from_pil = load_media(session, "image", image)
    assert torch.equal(from_pil, load_media(session, "image", media_dir / "blue.jpg"))
