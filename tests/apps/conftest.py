"""The tiny checkpoint and media of the inference tests, shared with the command tests here."""

from tests.inference.conftest import checkpoint_dir, media_dir, questions_file, session  # noqa: F401
