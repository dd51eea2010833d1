"""Fixtures of the training tests: the tiny tokenizer on disk and tiny modules."""

from __future__ import annotations

import pytest

from tests.training.tiny import write_tokenizer


@pytest.fixture(scope="session")
def tokenizer_dir(tmp_path_factory):
    return write_tokenizer(tmp_path_factory.mktemp("tokenizer"))
