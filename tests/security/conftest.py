"""Fixtures of the security tests: a marker path and the tiny tokenizer."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.training.tiny import write_tokenizer


@pytest.fixture
def marker(tmp_path) -> Path:
    """The file a payload creates if its code runs; every test asserts it never appears."""
    path = tmp_path / "PAYLOAD_RAN"
    yield path
    assert not path.exists(), "a payload's code ran"


@pytest.fixture(scope="session")
def tokenizer_dir(tmp_path_factory) -> Path:
    return write_tokenizer(tmp_path_factory.mktemp("tokenizer"))
