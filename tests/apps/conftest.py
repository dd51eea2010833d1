"""Fixtures of the command tests: the library packages' tiny checkpoint, media, judge server and tokenizer.

The command tests (one ``test_*`` file per ``lvlm`` command, mirroring :mod:`lvlm.apps`) reuse the fixtures the
library tests of the same layer define, so each is built once per session, not twice.
"""

from tests.eval.conftest import chat_server, eval_files  # noqa: F401
from tests.inference.conftest import checkpoint_dir, media_dir, questions_file, session  # noqa: F401
from tests.training.conftest import tokenizer_dir  # noqa: F401
