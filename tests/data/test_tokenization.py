"""Exact token masks: supervised ids are the answers' tokens + EOS, visual blocks have the exact lengths."""

from __future__ import annotations

import functools

import pytest
import torch
from tokenizer_fixtures import PoolTower, tiny_modalities, tiny_tokenizer
from transformers import AutoTokenizer

from lvlm.data.media import modality_list
from lvlm.data.sample_errors import MissingMediaError, PlaceholderMismatchError, SampleFormatError, SampleTooLongError
from lvlm.data.templates import llava_v1, plain, vicuna_v1
from lvlm.data.tokenization import IGNORE_INDEX, parse_conversations, tokenize_conversation, tokenize_prompt
from lvlm.modalities import ImageModality

TOK = tiny_tokenizer()
SLOTS = tiny_modalities(image_tokens=4, frame_tokens=3)
IMG, VID = TOK.convert_tokens_to_ids("<image>"), TOK.convert_tokens_to_ids("<video>")
FRAMES = 2


def conv(*values: str) -> list[dict[str, str]]:
    return [{"from": "human" if i % 2 == 0 else "gpt", "value": v} for i, v in enumerate(values)]


def ids(text: str) -> list[int]:
    return TOK(text, add_special_tokens=False)["input_ids"]


def supervised(sample) -> list[int]:
    return sample.labels[sample.labels != IGNORE_INDEX].tolist()


def run(conversations, template=vicuna_v1, max_length=512, **kw):
    return tokenize_conversation(conversations, TOK, template, SLOTS, FRAMES, max_length, key="k", **kw)


CASES = {
    "text": (conv("what colour is it?", "red"), [], []),
    "image": (conv("<image>\nwhat colour is the shape?", "a red circle"), ["<image>"], [4]),
    "video": (conv("<video>\nhow does it move?", "left"), ["<video>"], [3 * FRAMES]),
    "image+video": (conv("<video><image>\ndescribe", "a blue square"), ["<video>", "<image>"], [3 * FRAMES, 4]),
    "multi-turn": (
        conv("<image>\nwhat shape?", "circle", "what colour?", "green", "how many?", "one"),
        ["<image>"],
        [4],
    ),
}


@pytest.mark.parametrize("template", [vicuna_v1, llava_v1], ids=lambda t: t.name)
@pytest.mark.parametrize("case", list(CASES))
def test_only_answers_and_eos_are_supervised(case: str, template) -> None:
    conversations, markers, block_lengths = CASES[case]
    sample = run(conversations, template)
    answers = [t["value"] for t in conversations[1::2]]
    expected = [i for answer in answers for i in ids(" " + answer) + [TOK.eos_token_id]]
    assert supervised(sample) == expected
    assert sample.input_ids[0].item() == TOK.bos_token_id and sample.labels[0].item() == IGNORE_INDEX
    assert list(sample.markers) == markers
    assert [end - start for start, end in sample.visual_spans] == block_lengths
    for marker, (start, end) in zip(sample.markers, sample.visual_spans):
        token = IMG if marker == "<image>" else VID
        assert sample.input_ids[start:end].tolist() == [token] * (end - start)
        assert (sample.labels[start:end] == IGNORE_INDEX).all()
    visual = torch.isin(sample.input_ids, torch.tensor([IMG, VID]))
    assert int(visual.sum()) == sum(block_lengths)


def test_whole_sequence_is_bos_plus_segments_and_eos_is_an_id_not_characters() -> None:
    sample = run(conv("<image>\nwhat colour?", "red"))
    prompt = f"{vicuna_v1.system} USER: "
    expected = [TOK.bos_token_id, *ids(prompt), *[IMG] * 4, *ids("\nwhat colour? ASSISTANT:"), *ids(" red")]
    assert sample.input_ids.tolist() == expected + [TOK.eos_token_id]
    assert sample.visual_spans == ((1 + len(ids(prompt)), 1 + len(ids(prompt)) + 4),)


def test_plain_supervises_caption_and_newline_only() -> None:
    sample = run(conv("<image>\ndescribe the picture", "a red circle"), plain)
    assert sample.input_ids.tolist() == [TOK.bos_token_id, *[IMG] * 4, *ids("a red circle\n")]
    assert supervised(sample) == ids("a red circle\n")


def test_video_uses_frames_times_tokens_per_frame_with_clip_token_counts() -> None:
    slots = tiny_modalities(image_tokens=256, frame_tokens=257, size=224)
    sample = tokenize_conversation(conv("<video>\nwhat?", "left"), TOK, vicuna_v1, slots, 8, 4096, key="k")
    assert [end - start for start, end in sample.visual_spans] == [2056]
    image = tokenize_conversation(conv("<image>\nwhat?", "red"), TOK, vicuna_v1, slots, 8, 4096, key="k")
    assert [end - start for start, end in image.visual_spans] == [256]


def test_a_new_modality_needs_no_change_in_the_data_layer() -> None:
    depth = ImageModality(functools.partial(PoolTower, 4, 32)).bind("depth")
    slots = modality_list({m.name: m for m in [*SLOTS, depth]})
    assert (slots[2].token, slots[2].input_name) == ("<depth>", "depths")
    with pytest.raises(ValueError, match="each needs its own name"):
        modality_list([SLOTS[0], ImageModality(functools.partial(PoolTower, 4, 32)).bind("image")])
    sample = tokenize_conversation(conv("<depth><image>\nhow far?", "near"), TOK, vicuna_v1, slots, 2, 512, key="k")
    depth_id = TOK.convert_tokens_to_ids("<depth>")
    assert sample.markers == ("<depth>", "<image>")
    start, end = sample.visual_spans[0]
    assert sample.input_ids[start:end].tolist() == [depth_id] * 4


def test_truncation_cuts_before_a_visual_block_and_drops_its_marker() -> None:
    conversations = conv("<image>\nwhat colour?", "red", "and this <image>?", "blue")
    full = run(conversations)
    second_start = full.visual_spans[1][0]
    cut = run(conversations, max_length=second_start + 2)
    assert len(cut) == second_start
    assert cut.markers == ("<image>",)
    assert cut.input_ids.tolist() == full.input_ids[:second_start].tolist()
    assert supervised(cut) == ids(" red") + [TOK.eos_token_id]


def test_too_long_samples_are_rejected_with_a_typed_error() -> None:
    with pytest.raises(SampleTooLongError, match="visual tokens alone") as err:
        run(conv("<video><image>\nwhat?", "red"), max_length=8)
    assert err.value.key == "k" and err.value.reason == "too_long"
    with pytest.raises(SampleTooLongError, match="nothing supervised"):
        run(conv("<image>\nwhat colour is the shape in the picture?", "red"), max_length=12)


def test_placeholder_count_must_match_media_members() -> None:
    run(conv("<video><image>\nwhat?", "red"), media_counts={"image": 1, "video": 1})
    with pytest.raises(PlaceholderMismatchError, match="1 image marker.*but 2 image member") as err:
        run(conv("<image>\nwhat?", "red"), media_counts={"image": 2})
    assert err.value.reason == "placeholder_mismatch"
    with pytest.raises(MissingMediaError, match="1 video marker.*only 0 video member") as err:
        run(conv("<video>\nwhat?", "red"), media_counts={})
    assert err.value.reason == "missing_media"


@pytest.mark.parametrize(
    ("conversations", "message"),
    [
        ({"from": "human"}, "non-empty list"),
        ([], "non-empty list"),
        ([{"from": "user", "value": "hi"}], "turn 0 must be"),
        ([{"from": "human", "value": 3}], "turn 0 must be"),
        (conv("a", "b") + [{"from": "gpt", "value": "c"}], "must alternate"),
        ([{"from": "gpt", "value": "orphan answer"}], "no human turn"),
        (conv("only a question"), "no gpt answer"),
    ],
)
def test_wrong_json_shape_is_a_typed_error_naming_the_key(conversations, message) -> None:
    with pytest.raises(SampleFormatError, match=message) as err:
        run(conversations)
    assert err.value.key == "k" and err.value.reason == "bad_json" and "'k'" in str(err.value)


def test_leading_gpt_turn_is_dropped() -> None:
    turns = parse_conversations([{"from": "gpt", "value": "hello"}, *conv("what?", "red")])
    assert turns == [("human", "what?"), ("gpt", "red")]


def test_generation_prompt_tokens_and_reference() -> None:
    sample = tokenize_prompt(
        conv("<image>\nwhat colour?", "red", "and shape?", "circle"), TOK, vicuna_v1, SLOTS, FRAMES, 512, key="k"
    )
    training = run(conv("<image>\nwhat colour?", "red"))
    assert sample.labels is None and sample.reference == "circle"
    assert sample.input_ids.tolist() == training.input_ids.tolist() + ids("USER: and shape? ASSISTANT:")
    with pytest.raises(SampleTooLongError, match="prompt has"):
        tokenize_prompt(conv("<image>\nwhat colour?", "red"), TOK, vicuna_v1, SLOTS, FRAMES, 5, key="k")


def test_trained_tokenizer_round_trips_through_auto_tokenizer(tmp_path) -> None:
    TOK.save_pretrained(tmp_path)
    loaded = AutoTokenizer.from_pretrained(tmp_path)
    assert loaded.convert_tokens_to_ids(["<unk>", "<s>", "</s>", "<pad>", "<image>", "<video>", "<depth>"]) == [
        0, 1, 2, 3, 4, 5, 6
    ]  # fmt: skip
    assert (loaded.bos_token, loaded.eos_token, loaded.pad_token) == ("<s>", "</s>", "<pad>")
    text = "<image>\nwhat colour is the circle?</s>"
    assert loaded(text)["input_ids"] == TOK(text)["input_ids"] == [1, *ids(text)]
    assert ids(text)[0] == IMG and ids(text)[-1] == TOK.eos_token_id
