"""Batched greedy generation equals one-by-one generation; settings never sample at temperature 0."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch

from lvlm.inference.batch_generate import GenerationSettings, _until_eos, decode_answer, generate_batch, generate_ids
from tests.inference import seeded_run
from tests.training.launch import REPO, env


@pytest.fixture(scope="module")
def mixed_prompts(session, media_dir):
    return seeded_run.mixed_prompts(session, media_dir)


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
