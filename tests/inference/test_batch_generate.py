"""The engine's answers equal transformers' ``generate`` (greedy, batched, left-padded); seeds reproduce samples."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch

from lvlm.inference.batch_generate import (
    GenerationSettings,
    collate_for_generation,
    generate,
    generate_batch,
    generate_ids,
    media_inputs,
)
from tests.inference import seeded_run
from tests.training.launch import REPO, env


@pytest.fixture(scope="module")
def mixed_prompts(session, media_dir):
    return seeded_run.mixed_prompts(session, media_dir)


def reference_ids(session, samples, new_tokens: int) -> list[list[int]]:
    """transformers' ``generate`` (``VideoLLaVA.generate``) on the same left-padded batch, cut at end-of-sequence."""
    batch = collate_for_generation(session, samples)
    eos = session.tokenizer.eos_token_id
    new = session.model.generate(
        batch["input_ids"], attention_mask=batch["attention_mask"], max_new_tokens=new_tokens, eos_token_id=eos,
        pad_token_id=session.tokenizer.pad_token_id, **media_inputs(session, batch),
    )  # fmt: skip
    return [row[: row.index(eos)] if eos in row else row for row in new.tolist()]


def test_greedy_answers_equal_transformers_generate_batched_and_one_by_one(session, mixed_prompts):
    settings = GenerationSettings(max_new_tokens=6)
    batched = generate_ids(session, mixed_prompts, settings)
    assert batched == reference_ids(session, mixed_prompts, 6)  # left-padded: the prompts' lengths differ
    assert batched == [generate_ids(session, [sample], settings)[0] for sample in mixed_prompts]
    assert len({tuple(ids) for ids in batched}) > 1  # the prompts really differ
    assert generate_batch(session, mixed_prompts[:2], settings) == [
        session.tokenizer.decode(ids, skip_special_tokens=True).strip() for ids in batched[:2]
    ]


def test_a_long_answer_equals_transformers_and_stops_at_its_limit(session, mixed_prompts):
    answers = generate(session, mixed_prompts[2:4], GenerationSettings(max_new_tokens=40))
    assert [a.ids for a in answers] == reference_ids(session, mixed_prompts[2:4], 40)
    assert all(a.finish_reason == "length" and len(a.ids) == 40 for a in answers)


def test_temperature_zero_is_greedy_and_settings_are_checked(session, mixed_prompts):
    greedy = generate_ids(session, mixed_prompts[:1], GenerationSettings(4))
    assert generate_ids(session, mixed_prompts[:1], GenerationSettings(4, top_p=0.5, seed=3)) == greedy
    with pytest.raises(ValueError, match="temperature"):
        GenerationSettings(temperature=-1)
    with pytest.raises(ValueError, match="top_p"):
        GenerationSettings(top_p=0)


def test_a_seeded_request_samples_the_same_alone_and_in_any_batch(session, mixed_prompts):
    seeded = GenerationSettings(max_new_tokens=8, temperature=1.0, seed=11)
    alone = generate_ids(session, mixed_prompts[1:2], seeded)[0]
    others = [GenerationSettings(8, temperature=0.7), GenerationSettings(8), seeded, GenerationSettings(8, 1.0, seed=2)]
    batched = generate(session, [mixed_prompts[0], mixed_prompts[3], mixed_prompts[1], mixed_prompts[4]], others)
    assert batched[2].ids == alone
    assert batched[1].ids == generate_ids(session, mixed_prompts[3:4], GenerationSettings(8))[0]  # greedy neighbour
    assert alone != generate_ids(session, mixed_prompts[1:2], GenerationSettings(8))[0]  # it sampled


def test_seeded_sampling_is_reproducible_across_processes(session, checkpoint_dir, media_dir, mixed_prompts):
    """The same seed gives the same samples in another process with its own model load; another seed differs."""
    torch.manual_seed(1234)  # this process's global generator is elsewhere than a fresh one's: only the seed decides
    torch.rand(1000)
    here = generate_ids(session, mixed_prompts[:2], seeded_run.sampled(3))
    command = [sys.executable, "-m", "tests.inference.seeded_run", str(checkpoint_dir), str(media_dir), "3"]
    done = subprocess.run(command, cwd=REPO, env=env(), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads(done.stdout.splitlines()[-1]) == here
    assert generate_ids(session, mixed_prompts[:2], seeded_run.sampled(4)) != here
    assert generate_ids(session, mixed_prompts[:2], GenerationSettings(4)) != here  # it sampled, not greedy
