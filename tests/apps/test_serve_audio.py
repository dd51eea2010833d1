"""OpenAI ``input_audio`` parts through a real ``lvlm serve`` and the official ``openai`` client.

A model with a modality that declares ``openai_part_types = ("input_audio",)`` answers an ``input_audio`` part as
the library answers the same WAV file; a model without one answers 400 naming the part types it takes.
"""

from __future__ import annotations

import base64

import openai
import pytest
import torch

from lvlm.core.errors import UserError
from lvlm.inference.serve_app import create_app
from lvlm.inference.session import load_session
from lvlm.models.vision.clip_tower import CLIPVisionTower
from tests.apps.audio_modality import WavModality, write_wav
from tests.apps.serve_fixtures import MODEL, LiveServer, data_url, expected_answer, image_part, text_part
from tests.inference.tiny_checkpoint import vision_dict

QUESTION = "what colour is the shape?"
TOKENS = 6


def with_audio(session):
    """The session's model grown by an ``audio`` modality (a fresh tower, its own placeholder token)."""
    torch.manual_seed(3)
    tower = CLIPVisionTower(vision_dict()).eval()
    session.model.add_modality("audio", tower, tokenizer=session.tokenizer)
    modality = WavModality(tower=lambda: tower).bind("audio")
    modality.use_tower_facts(tower)
    session.modalities["audio"] = modality
    return session


@pytest.fixture(scope="module")
def audio_session(checkpoint_dir):
    return with_audio(load_session(checkpoint_dir))


@pytest.fixture(scope="module")
def audio_server(audio_session):
    live = LiveServer(audio_session, window_s=0.01)
    yield live
    live.stop()


@pytest.fixture(scope="module")
def plain_server(session):
    live = LiveServer(session, window_s=0.01)
    yield live
    live.stop()


def audio_part(path, fmt="wav") -> dict:
    return {"type": "input_audio", "input_audio": {"data": base64.b64encode(path.read_bytes()).decode(), "format": fmt}}


def ask(server, content):
    return server.client().chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": content}], max_tokens=TOKENS, temperature=0
    )


def test_input_audio_reaches_the_modality_that_declares_it(audio_server, audio_session, tmp_path):
    low, high = write_wav(tmp_path / "low.wav", 220.0), write_wav(tmp_path / "high.wav", 1760.0)
    replies = {}
    for path in (low, high):
        expected, prompt_tokens = expected_answer(
            audio_session, [{"from": "human", "value": "<audio>\n" + QUESTION}], [("audio", path)], TOKENS
        )
        reply = ask(audio_server, [text_part(QUESTION), audio_part(path)])
        assert reply.choices[0].message.content == expected and expected
        assert reply.usage.prompt_tokens == prompt_tokens  # the audio's placeholder tokens are in the prompt
        replies[path.name] = reply.choices[0].message.content
    # the same bytes as an ``audio_url`` data: URL are the same item
    same = ask(
        audio_server, [text_part(QUESTION), {"type": "audio_url", "audio_url": {"url": data_url(low, "audio/wav")}}]
    )
    assert same.choices[0].message.content == replies["low.wav"]


def test_a_malformed_input_audio_part_is_a_400_showing_its_shape(audio_server):
    with pytest.raises(openai.BadRequestError, match='"data": BASE64') as err:
        ask(audio_server, [text_part(QUESTION), {"type": "input_audio", "input_audio": {"format": "wav"}}])
    assert err.value.body["param"] == "messages[0].content[1]"
    with pytest.raises(openai.BadRequestError, match="cannot decode this audio"):
        ask(audio_server, [{"type": "input_audio", "input_audio": {"data": base64.b64encode(b"no wav").decode()}}])


def test_a_model_without_audio_answers_400_naming_the_part_types_it_takes(plain_server, media_dir, tmp_path):
    with pytest.raises(openai.BadRequestError) as err:
        ask(plain_server, [text_part(QUESTION), audio_part(write_wav(tmp_path / "a.wav"))])
    message = err.value.body["message"]
    assert "'input_audio'" in message and 'text, image_url, video_url (each {"url": ...})' in message
    assert err.value.body["code"] == "unsupported_content"
    # the benign twin: the part type it names works on the same server
    reply = ask(plain_server, [text_part(QUESTION), image_part(data_url(media_dir / "red.png", "image/png"))])
    assert reply.choices[0].message.content


def test_a_modality_declaring_a_part_type_serve_cannot_read_is_refused_at_start(checkpoint_dir):
    session = with_audio(load_session(checkpoint_dir))
    create_app(session, MODEL)  # the benign twin: input_audio is routable
    session.modalities["audio"].openai_part_types = ("input_file",)
    with pytest.raises(UserError, match="declares 'input_file'; lvlm serve reads input_audio"):
        create_app(session, MODEL)
