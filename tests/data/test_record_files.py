"""Files of records: a JSON list or JSONL; a file that cannot be used is one line naming it."""

from __future__ import annotations

import pytest

from lvlm.core.text_files import InputFileError
from lvlm.data.record_files import read_records
from lvlm.data.record_format import RecordError


def test_a_json_list_is_read_whole_with_record_numbers(tmp_path):
    path = tmp_path / "q.json"
    path.write_text('[{"id": "a"},\n {"id": "b"}]')
    loaded = read_records(path)
    assert loaded.values == [{"id": "a"}, {"id": "b"}]
    assert loaded.sources == [f"{path}:record 1", f"{path}:record 2"] and loaded.note == ""


def test_jsonl_is_read_line_by_line_and_a_bad_line_is_one_bad_record(tmp_path):
    path = tmp_path / "q.jsonl"
    path.write_text('{"id": "a"}\n\n{"id": "broken\n"a string"\n')
    loaded = read_records(path)
    assert loaded.values[0] == {"id": "a"} and loaded.values[2] == "a string"
    assert isinstance(loaded.values[1], RecordError) and loaded.values[1].reason == "invalid_json"
    assert loaded.sources == [f"{path}:line 1", f"{path}:line 3", f"{path}:line 4"]


def test_a_file_that_is_not_utf8_is_read_as_latin1_and_says_so_unless_utf8_is_required(tmp_path):
    path = tmp_path / "q.json"
    path.write_bytes('[{"id": "é"}]'.encode("latin-1"))
    loaded = read_records(path)
    assert loaded.values == [{"id": "é"}] and "read as latin-1" in loaded.note
    with pytest.raises(InputFileError, match="q.json: not valid utf-8 at byte 9"):
        read_records(path, encoding="utf-8")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("", "the file is empty (expected a JSON list of records, or JSONL)"),
        ("[{]", "not valid JSON (line 1, column 3: Expecting property name"),
        ("3\n", "neither a JSON list nor JSONL of objects (FILE:line 1: not an object: int)"),
        ('{\n"id": 1\n}', "neither a JSON list nor JSONL of objects (FILE:line 1: not valid JSON"),
    ],
)
def test_an_unusable_file_is_one_error_naming_it(tmp_path, content, message):
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(InputFileError) as err:
        read_records(path)
    assert str(err.value).startswith(f"{path}: {message.replace('FILE', str(path))}")


def test_a_missing_file_is_named(tmp_path):
    with pytest.raises(InputFileError, match="absent.json: file not found"):
        read_records(tmp_path / "absent.json")
