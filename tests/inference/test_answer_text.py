"""Answers grow token by token: incremental text, stop strings, streaming pieces that add up to the answer."""

from __future__ import annotations

import pytest
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast

from lvlm.models.generation.answer import Answer
from lvlm.models.generation.detokenizer import IncrementalText
from lvlm.models.generation.settings import GenerationSettings

EOS = -1  # no token of these tests


@pytest.fixture(scope="module")
def byte_tokenizer():
    """A byte-level BPE that never saw an emoji: each emoji is several byte tokens, each alone half a character."""
    core = Tokenizer(models.BPE())
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=300, initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    core.train_from_iterator(["the red square moves right and the blue one stays"] * 10, trainer)
    return PreTrainedTokenizerFast(tokenizer_object=core)


def feed(answer: Answer, tokenizer, text: str, context: list[int] = ()) -> list[int]:
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    answer.start(tokenizer, context, room=1000)
    for token in ids:
        if answer.finish_reason is None:
            answer.step(token, EOS)
    return ids


def test_an_emoji_split_over_byte_tokens_never_streams_a_replacement_character(byte_tokenizer):
    pieces: list[str] = []
    answer = Answer(GenerationSettings(max_new_tokens=200), on_text=pieces.append)
    ids = feed(answer, byte_tokenizer, "the red 🟥 square moves 👉 right")
    assert len(ids) > len(["the", "red", "🟥", "square", "moves", "👉", "right"]) + 4  # the emojis really are split
    answer._finish("stop")
    assert not any("\ufffd" in piece for piece in pieces)
    assert "".join(pieces) == answer.text == "the red 🟥 square moves 👉 right"


def test_incremental_text_equals_decoding_the_whole_answer_with_the_prompt_in_front(session):
    tok = session.tokenizer
    prompt = tok("USER: what colour? ASSISTANT:", add_special_tokens=False)["input_ids"]
    ids = tok(" the red square moves right", add_special_tokens=False)["input_ids"]
    text = IncrementalText(tok, prompt)
    deltas = [text.add(token) for token in ids]
    assert "".join(deltas) == text.text
    assert text.text.strip() == tok.decode(ids, skip_special_tokens=True).strip()
    assert text.text.startswith(" ")  # the first word's space came from the prompt's context


def test_a_stop_string_ends_the_answer_and_is_never_streamed(session):
    pieces: list[str] = []
    answer = Answer(GenerationSettings(max_new_tokens=50, stop=["square moves"]), on_text=pieces.append)
    feed(answer, session.tokenizer, "the red square moves right and the blue one stays")
    assert answer.finish_reason == "stop" and answer.text == "the red"
    assert "".join(pieces) == "the red"  # "square" was held back: it could have been the stop string's start
    assert len(answer.ids) < len(session.tokenizer("the red square moves right", add_special_tokens=False).input_ids)


def test_length_limit_end_of_sequence_and_cancel(session):
    tok = session.tokenizer
    short = Answer(GenerationSettings(max_new_tokens=2))
    feed(short, tok, "the red square moves right")
    assert short.finish_reason == "length" and len(short.ids) == 2
    ended = Answer(GenerationSettings(max_new_tokens=10))
    ended.start(tok, [], room=1000)
    ended.step(tok("red", add_special_tokens=False).input_ids[0], tok.eos_token_id)
    ended.step(tok.eos_token_id, tok.eos_token_id)
    assert ended.finish_reason == "stop" and ended.text == "red"
    cancelled = Answer(GenerationSettings(max_new_tokens=10))
    cancelled.start(tok, [], room=3)
    cancelled.cancel()
    cancelled.step(5, tok.eos_token_id)
    assert cancelled.finish_reason == "cancelled" and cancelled.max_tokens == 3  # room caps the limit
