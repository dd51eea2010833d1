"""The VQA answer normalisation of the official VQAv2 evaluation: punctuation, number words, articles, contractions.

Rules (in this order, as the official evaluator applies them):
1. Punctuation: if the text has a digit-comma-digit (``1,000``) every punctuation mark is deleted; otherwise a
   mark touching a space is deleted and a mark inside a word becomes a space (``black/white`` ->
   ``black white``). Periods not followed by a digit are then deleted (``2.5`` keeps its period).
2. Lowercase, split on whitespace, number words ``none``/``zero``..``ten`` -> digits, drop ``a``/``an``/``the``,
   and restore the apostrophe of contractions written without it (``dont`` -> ``don't``).
"""

from __future__ import annotations

import re

PUNCTUATION = (";", "/", "[", "]", '"', "{", "}", "(", ")", "=", "+", "\\", "_", "-", ">", "<", "@", "`", ",", "?", "!")
NUMBER_WORDS = {
    "none": "0",
    "zero": "0",
    "one": "1",
    "two": "2",
    "three": "3",
    "four": "4",
    "five": "5",
    "six": "6",
    "seven": "7",
    "eight": "8",
    "nine": "9",
    "ten": "10",
}
ARTICLES = frozenset({"a", "an", "the"})
# Contractions whose apostrophe-less spelling is not itself an English word ("its", "well", "were",
# "ill", "shell", "shed", "hell", "wed" stay as they are).
_CONTRACTIONS = """
ain't aren't can't could've couldn't couldn't've didn't doesn't don't hadn't hadn't've hasn't
haven't he'd he'd've he's how'd how'll how's i'd've i'm i've isn't it'd it'd've it'll let's ma'am
mightn't mightn't've might've mustn't must've needn't not've o'clock oughtn't shan't she'd've she's
should've shouldn't shouldn't've somebody'd somebody'd've somebody'll somebody's someone'd
someone'd've someone'll someone's something'd something'd've something'll that's there'd there'd've
there're there's they'd they'd've they'll they're they've wasn't we'd've we've weren't what'll
what're what's what've when's where'd where's where've who'd who'd've who'll who's who've why'll
why're why's won't would've wouldn't wouldn't've y'all y'all'll y'all'd've you'd you'd've you'll
you're you've
"""
CONTRACTIONS = {c.replace("'", ""): c for c in _CONTRACTIONS.split()}

_DIGIT_COMMA_DIGIT = re.compile(r"\d,\d")
_PERIOD_NOT_BEFORE_DIGIT = re.compile(r"\.(?!\d)")


def strip_punctuation(text: str) -> str:
    """Rule 1 above."""
    out = text
    delete_all = _DIGIT_COMMA_DIGIT.search(text) is not None
    for mark in PUNCTUATION:
        if delete_all or (mark + " " in text or " " + mark in text):
            out = out.replace(mark, "")
        else:
            out = out.replace(mark, " ")
    return _PERIOD_NOT_BEFORE_DIGIT.sub("", out)


def normalize_words(text: str) -> str:
    """Rule 2 above."""
    words = [NUMBER_WORDS.get(w, w) for w in text.lower().split()]
    words = [CONTRACTIONS.get(w, w) for w in words if w not in ARTICLES]
    return " ".join(words)


def normalize_vqa_answer(text: str) -> str:
    """Normalise an answer (prediction or reference) the way the official VQA evaluator does."""
    text = text.replace("\n", " ").replace("\t", " ").strip()
    return normalize_words(strip_punctuation(text))
