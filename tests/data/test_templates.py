"""Chat templates render the exact strings of the original `conversation.py`."""

from __future__ import annotations

import pytest

from lvlm.data.templates import ChatTemplate, Segment, get_template, llava_v1, plain, vicuna_v1

VICUNA_SYSTEM = (
    "A chat between a curious user and an artificial intelligence assistant. "
    "The assistant gives helpful, detailed, and polite answers to the user's questions."
)
LLAVA_SYSTEM = (
    "A chat between a curious human and an artificial intelligence assistant. "
    "The assistant gives helpful, detailed, and polite answers to the human's questions."
)
TWO_TURNS = [("human", "<image>\nQ1"), ("gpt", "A1"), ("human", "Q2"), ("gpt", "A2")]


def test_vicuna_v1_renders_the_spec_example() -> None:
    assert (
        vicuna_v1.render(TWO_TURNS) == f"{VICUNA_SYSTEM} USER: <image>\nQ1 ASSISTANT: A1</s>USER: Q2 ASSISTANT: A2</s>"
    )


def test_llava_v1_differs_only_in_system_text() -> None:
    assert llava_v1.system == LLAVA_SYSTEM
    assert llava_v1.render(TWO_TURNS) == f"{LLAVA_SYSTEM} USER: <image>\nQ1 ASSISTANT: A1</s>USER: Q2 ASSISTANT: A2</s>"


def test_segments_mark_answers_and_end_of_turn_as_targets() -> None:
    assert vicuna_v1.segments(TWO_TURNS) == [
        Segment(f"{VICUNA_SYSTEM} USER: <image>\nQ1 ASSISTANT:", False),
        Segment(" A1", True),
        Segment("</s>", True, is_eos=True),
        Segment("USER: Q2 ASSISTANT:", False),
        Segment(" A2", True),
        Segment("</s>", True, is_eos=True),
    ]


def test_generation_prompt_ends_with_assistant_colon() -> None:
    assert vicuna_v1.generation_prompt([("human", "<video>\nWhat moves?")]) == (
        f"{VICUNA_SYSTEM} USER: <video>\nWhat moves? ASSISTANT:"
    )
    multi = llava_v1.generation_prompt(TWO_TURNS[:3])
    assert multi == f"{LLAVA_SYSTEM} USER: <image>\nQ1 ASSISTANT: A1</s>USER: Q2 ASSISTANT:"
    segments = llava_v1.prompt_segments(TWO_TURNS[:3])
    assert not any(seg.is_target for seg in segments)
    assert [seg.is_eos for seg in segments] == [False, False, True, False]


def test_plain_keeps_markers_then_caption_and_newline() -> None:
    turns = [("human", "<video>\nDescribe <image> this."), ("gpt", "a red circle")]
    assert plain.render(turns) == "<video><image>a red circle\n"
    assert plain.segments(turns) == [Segment("<video><image>", False), Segment("a red circle\n", True)]
    assert plain.generation_prompt(turns[:1]) == "<video><image>"
    with pytest.raises(ValueError, match="exactly one human turn"):
        plain.segments(TWO_TURNS)


@pytest.mark.parametrize(
    ("turns", "message"),
    [
        ([("gpt", "A"), ("human", "Q")], "turn 0 is from 'gpt'"),
        ([("human", "Q"), ("human", "Q")], "turn 1 is from 'human'"),
        ([("human", "Q")], "must end with a 'gpt' turn"),
    ],
)
def test_bad_turn_order_is_rejected(turns, message) -> None:
    with pytest.raises(ValueError, match=message):
        vicuna_v1.segments(turns)


def test_templates_are_frozen_values_and_lookup_is_read_only() -> None:
    assert get_template("vicuna_v1") is vicuna_v1
    assert get_template(plain) is plain
    with pytest.raises(AttributeError, match="values"):
        vicuna_v1.system = "x"  # type: ignore[misc]
    with pytest.raises(KeyError, match="known templates"):
        get_template("llava_v0")


def test_a_users_template_round_trips_through_its_saved_spec() -> None:
    from lvlm.core.errors import UnsafeInputError
    from lvlm.core.specs import spec_of

    mine = ChatTemplate(name="terse", system="Answer in one word.", roles=("Q", "A"), sep="\n", sep2="</s>")
    spec = spec_of(mine)
    assert spec["class_path"] == "lvlm.data.templates.ChatTemplate" and spec["init_args"]["roles"] == ["Q", "A"]
    assert get_template(spec) == mine
    assert get_template(spec_of(vicuna_v1)) == vicuna_v1
    with pytest.raises(UnsafeInputError, match="lvlm_config.json: chat_template.class_path"):
        get_template({"class_path": "os.system", "init_args": {}}, where="lvlm_config.json: chat_template")
