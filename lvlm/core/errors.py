"""Errors caused by the user's input: the ``lvlm`` command prints their message without a traceback.

Set ``LVLM_DEBUG=1`` (or pass ``--debug`` to ``lvlm``) to see the traceback as well.
"""

from __future__ import annotations


class UserError(Exception):
    """A mistake in what the user gave (a file, a field, a flag); the message names it and says what to do."""


class UnsafeInputError(UserError):
    """A file asked lvlm to run code or to reach outside where it may (refused before anything ran)."""
