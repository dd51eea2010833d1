"""The one identity order: question_id, then key, then id; a value that cannot name a record counts as absent."""

from __future__ import annotations

import pytest

from lvlm.core.record_identity import IDENTITY_FIELDS, identity_field, record_identity


@pytest.mark.parametrize(
    ("record", "identity"),
    [
        ({"question_id": 7, "key": "k", "id": "i"}, "7"),
        ({"key": "k", "id": "i"}, "k"),
        ({"id": "i"}, "i"),
        ({"id": 0}, "0"),
        ({"question_id": None, "key": "", "id": "i"}, "i"),  # None and "" cannot name a record
        ({"question_id": True, "id": "i"}, "i"),  # a bool is not an integer id
        ({"id": {"nested": 1}}, None),
        ({}, None),
        (["not", "an", "object"], None),
    ],
)
def test_the_first_usable_identity_field_names_a_record(record, identity):
    assert record_identity(record) == identity


def test_the_order_is_question_id_key_id():
    assert IDENTITY_FIELDS == ("question_id", "key", "id")
    assert identity_field({"id": "a", "key": "b"}) == "key"
