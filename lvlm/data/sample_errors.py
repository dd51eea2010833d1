"""Typed errors for a sample that cannot be used: each names the sample key and a short reason code.

The DataModule catches these (and the decoders' `MediaDecodeError`), skips the sample, counts it and writes it
to the bad-sample report (`lvlm.data.report`); a bad sample is never replaced by another one.
"""

from __future__ import annotations

from lvlm.core.errors import UserError


class BadSampleError(ValueError):
    """A sample that cannot be trained or evaluated on.

    Attributes:
        key: The sample's `__key__`.
        reason: A short reason code used for counting (`bad_json`, `placeholder_mismatch`, ...).
        detail: What exactly was wrong and what to do, in words.
    """

    reason = "bad_sample"

    def __init__(self, key: str, detail: str) -> None:
        self.key = key
        self.detail = detail
        super().__init__(f"sample {key!r}: {detail}")


class SampleFormatError(BadSampleError):
    """The sample's JSON is not a list of alternating `{"from": "human"|"gpt", "value": str}` turns."""

    reason = "bad_json"


class PlaceholderMismatchError(BadSampleError):
    """The number of `<image>`/`<video>` markers differs from the number of media members."""

    reason = "placeholder_mismatch"


class SampleTooLongError(BadSampleError):
    """The sample cannot fit in `max_length` tokens without cutting a visual block or all its targets."""

    reason = "too_long"


class MissingMediaError(BadSampleError):
    """A media member the sample needs is absent from the shard."""

    reason = "missing_media"


class TooManyBadSamplesError(UserError):
    """A training stream met ``max_consecutive_bad_samples`` bad samples in a row: the data, not a sample, is wrong.

    The message names the bad-sample report file and the counts by reason. Raised in a DataLoader worker, it
    reaches the main process rebuilt by PyTorch from one string (``Caught ... Original Traceback ...``); the
    constructor keeps only the original message, so ``lvlm`` still prints one line.
    """

    def __init__(self, message: str) -> None:
        last = message.rstrip().rsplit("\n", 1)[-1]
        name = f"{type(self).__name__}: "
        if message.startswith("Caught ") and name in last:
            message = last.split(name, 1)[1]
        super().__init__(message)
