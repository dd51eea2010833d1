"""Chat templates as values: how a conversation becomes text, and which parts of it are targets.

A template renders a conversation into ordered `Segment`s. Tokenization (`lvlm.data.tokenization`) tokenizes
each segment on its own and concatenates, so the supervised span is known by construction instead of being
recovered from the rendered string by offset arithmetic (the original's `-2` trick).

Rendered strings (the original's `videollava/conversation.py`):

- `vicuna_v1` / `llava_v1` (SeparatorStyle.TWO):
  `"<system> USER: <image>\\nQ1 ASSISTANT: A1</s>USER: Q2 ASSISTANT: A2</s>"`; a generation prompt ends with
  `"ASSISTANT:"`. Targets are `" A1"` and the end-of-turn `</s>` (the tokenizer's EOS id, never the characters).
- `plain` (LLaVA-1.5 pre-training style): the human turn is reduced to its visual markers, then the caption
  and `"\\n"`; the caption and its newline are the target; no EOS.

Templates are values: pass them around, never assign one globally.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal, NamedTuple

from lvlm.core.registry import resolve_component

HUMAN = "human"
GPT = "gpt"

Turn = tuple[str, str]
"""One conversation turn: `(role, text)` with role `"human"` or `"gpt"`."""


class Segment(NamedTuple):
    """A piece of rendered conversation.

    Attributes:
        text: The text of the piece (may contain visual markers such as `<image>`).
        is_target: True if the tokens of this piece are supervised (labels kept), False if masked (-100).
        is_eos: True if this piece is the end-of-turn separator, to be tokenized as the tokenizer's EOS id.
    """

    text: str
    is_target: bool
    is_eos: bool = False


class ChatTemplate:
    """A conversation format (a value: equal templates compare equal; never assigned globally).

    Recipes name a template by class path (``lvlm.data.templates.VicunaV1``, or a user's subclass with its own
    :meth:`segments`); a saved model records ``{class_path, init_args}`` (:meth:`init_args`), so a user's
    template round-trips through save and load.

    Args:
        name: The template's name (`vicuna_v1`, `llava_v1`, `plain`).
        system: System prompt placed before the first turn (empty for `plain`).
        roles: Display names of the human and the assistant.
        sep: Separator after a human message (style "two"), or after the caption (style "plain").
        sep2: End-of-turn separator after an assistant message; rendered as the EOS token.
        style: `"two"` for the Vicuna v1 format, `"plain"` for caption pre-training.
    """

    def __init__(
        self,
        name: str,
        system: str = "",
        roles: tuple[str, str] = ("USER", "ASSISTANT"),
        sep: str = " ",
        sep2: str = "</s>",
        style: Literal["two", "plain"] = "two",
    ) -> None:
        if style not in ("two", "plain"):
            raise ValueError(f"template {name!r}: style must be 'two' or 'plain', got {style!r}")
        values = {"name": name, "system": system, "roles": tuple(roles), "sep": sep, "sep2": sep2, "style": style}
        for attr, value in values.items():
            object.__setattr__(self, attr, value)

    def __setattr__(self, attr: str, value: Any) -> None:
        raise AttributeError(f"chat templates are values: make a new one instead of setting {attr!r}")

    def init_args(self) -> dict[str, Any]:
        """The constructor arguments (what a saved model records)."""
        return {
            "name": self.name,
            "system": self.system,
            "roles": list(self.roles),
            "sep": self.sep,
            "sep2": self.sep2,
            "style": self.style,
        }

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and other.init_args() == self.init_args()

    def __hash__(self) -> int:
        return hash((type(self).__name__, self.name, self.system, self.roles, self.sep, self.sep2, self.style))

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, style={self.style!r})"

    def segments(self, turns: Sequence[Turn], markers: Sequence[str] = ("<image>", "<video>")) -> list[Segment]:
        """Renders a full conversation (ending with an assistant turn) into ordered segments.

        Args:
            turns: Alternating `(role, text)` turns, starting with `"human"` and ending with `"gpt"`.
            markers: Visual markers kept by the `plain` style (which drops the rest of the human text).

        Returns:
            Segments whose texts concatenate to the rendered conversation (EOS segments as `sep2`).

        Raises:
            ValueError: If turns do not alternate human/gpt from a human turn, or do not end with a gpt turn.
        """
        _check_alternation(turns, self.name)
        if not turns or turns[-1][0] != GPT:
            raise ValueError(f"template {self.name!r}: a training conversation must end with a 'gpt' turn")
        if self.style == "plain":
            return self._plain_segments(turns, markers)
        out: list[Segment] = []
        for i in range(0, len(turns), 2):
            prefix = self.system + self.sep if i == 0 else ""
            question, answer = turns[i][1], turns[i + 1][1]
            out.append(Segment(f"{prefix}{self.roles[0]}: {question}{self.sep}{self.roles[1]}:", False))
            # The space after "ASSISTANT:" belongs to the answer, as in SentencePiece's "▁A1" token.
            out.append(Segment(" " + answer, True))
            out.append(Segment(self.sep2, True, is_eos=True))
        return out

    def prompt_segments(self, turns: Sequence[Turn], markers: Sequence[str] = ("<image>", "<video>")) -> list[Segment]:
        """Renders the prompt that asks the model for the next assistant turn, as segments (none is a target).

        Args:
            turns: Alternating turns starting with `"human"` and ending with the `"human"` turn to answer.
            markers: Visual markers kept by the `plain` style.

        Returns:
            Segments of the earlier turns (EOS separators flagged `is_eos`) and of the final question; for
            style "two" the text ends with `"ASSISTANT:"`.

        Raises:
            ValueError: If the turns do not alternate or do not end with a human turn.
        """
        _check_alternation(turns, self.name)
        if not turns or turns[-1][0] != HUMAN:
            raise ValueError(f"template {self.name!r}: a generation prompt must end with a 'human' turn")
        if self.style == "plain":
            return [Segment(_markers_only(turns[-1][1], markers), False)]
        history = self.segments(turns[:-1], markers) if len(turns) > 1 else []
        prefix = self.system + self.sep if not history else ""
        last = Segment(f"{prefix}{self.roles[0]}: {turns[-1][1]}{self.sep}{self.roles[1]}:", False)
        return [seg._replace(is_target=False) for seg in history] + [last]

    def generation_prompt(self, turns: Sequence[Turn], markers: Sequence[str] = ("<image>", "<video>")) -> str:
        """The prompt text of `prompt_segments` joined (EOS separators written as `sep2`)."""
        return "".join(seg.text for seg in self.prompt_segments(turns, markers))

    def render(self, turns: Sequence[Turn], markers: Sequence[str] = ("<image>", "<video>")) -> str:
        """Returns the full rendered text of a training conversation (the segments joined)."""
        return "".join(seg.text for seg in self.segments(turns, markers))

    def _plain_segments(self, turns: Sequence[Turn], markers: Sequence[str]) -> list[Segment]:
        if len(turns) != 2:
            raise ValueError(
                f"template 'plain' takes exactly one human turn and one gpt turn (a caption), got {len(turns)} turns"
            )
        return [Segment(_markers_only(turns[0][1], markers), False), Segment(turns[1][1] + self.sep, True)]


def _markers_only(text: str, markers: Sequence[str]) -> str:
    """Keeps only the visual markers of `text`, in order of appearance (LLaVA's `preprocess_plain`)."""
    found: list[tuple[int, str]] = []
    for marker in markers:
        start = text.find(marker)
        while start != -1:
            found.append((start, marker))
            start = text.find(marker, start + len(marker))
    return "".join(marker for _, marker in sorted(found))


def _check_alternation(turns: Sequence[Turn], name: str) -> None:
    for i, (role, _) in enumerate(turns):
        expected = HUMAN if i % 2 == 0 else GPT
        if role != expected:
            raise ValueError(f"template {name!r}: turn {i} is from {role!r}, expected {expected!r} (turns alternate)")


VICUNA_SYSTEM = (
    "A chat between a curious user and an artificial intelligence assistant. "
    "The assistant gives helpful, detailed, and polite answers to the user's questions."
)
LLAVA_SYSTEM = (
    "A chat between a curious human and an artificial intelligence assistant. "
    "The assistant gives helpful, detailed, and polite answers to the human's questions."
)


class VicunaV1(ChatTemplate):
    """``vicuna_v1``: Video-LLaVA's training template."""

    def __init__(self, name: str = "vicuna_v1", system: str = VICUNA_SYSTEM, **kwargs: Any) -> None:
        super().__init__(name, system, **kwargs)


class LlavaV1(ChatTemplate):
    """``llava_v1``: the template of the original's evaluation and demo."""

    def __init__(self, name: str = "llava_v1", system: str = LLAVA_SYSTEM, **kwargs: Any) -> None:
        super().__init__(name, system, **kwargs)


class Plain(ChatTemplate):
    """``plain``: LLaVA-1.5-style caption pre-training (markers, caption, newline)."""

    def __init__(
        self,
        name: str = "plain",
        system: str = "",
        roles: tuple[str, str] = ("", ""),
        sep: str = "\n",
        sep2: str = "",
        style: Literal["two", "plain"] = "plain",
    ) -> None:
        super().__init__(name, system, roles, sep, sep2, style)


vicuna_v1 = VicunaV1()
llava_v1 = LlavaV1()
plain = Plain()

_TEMPLATES: dict[str, ChatTemplate] = {t.name: t for t in (vicuna_v1, llava_v1, plain)}


def get_template(name: str | ChatTemplate | Mapping[str, Any], where: str = "chat_template") -> ChatTemplate:
    """A template from a built-in name, a saved ``{class_path, init_args}`` (a user's template round-trips), or a
    template value (returned unchanged).

    A saved class path resolves only to a ``ChatTemplate`` subclass of lvlm or of a registered plugin
    (:mod:`lvlm.core.registry`), refused before import otherwise.

    Raises:
        KeyError: If the name is unknown; the message lists the known names.
        UnsafeInputError: A saved class path that is not a template class of lvlm or a registered plugin.
    """
    if isinstance(name, ChatTemplate):
        return name
    if isinstance(name, Mapping):
        cls = resolve_component(name.get("class_path"), ChatTemplate, f"{where}.class_path", group="lvlm.templates")
        return cls(**dict(name.get("init_args") or {}))
    if name not in _TEMPLATES:
        raise KeyError(f"unknown chat template {name!r}; known templates: {sorted(_TEMPLATES)}")
    return _TEMPLATES[name]
