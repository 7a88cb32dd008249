"""The shared input error names the file, row, line and field it is given."""

from __future__ import annotations

import pytest

from core.errors import InputError


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"row": 3, "line": 4, "field": "label"}, "news.csv: row 3 (line 4), field 'label': unknown label"),
        ({"row": 3}, "news.csv: row 3: unknown label"),
        ({"line": 9, "field": "label"}, "news.csv: line 9, field 'label': unknown label"),
        ({"field": "label"}, "news.csv: field 'label': unknown label"),
        ({}, "news.csv: unknown label"),
    ],
)
def test_message_names_the_known_parts(kwargs, message):
    err = InputError("news.csv", "unknown label", **kwargs)
    assert str(err) == message
    assert isinstance(err, ValueError) and err.path == "news.csv" and err.problem == "unknown label"


def test_check_path_kind_names_a_folder_given_for_a_file_and_the_reverse(tmp_path):
    from core.errors import check_path_kind

    (tmp_path / "f.csv").write_text("x")
    assert check_path_kind(tmp_path / "f.csv", "file") == tmp_path / "f.csv"
    assert (
        check_path_kind(tmp_path / "missing.csv", "file") == tmp_path / "missing.csv"
    )  # callers say "missing"
    with pytest.raises(InputError, match="is a folder, not a file"):
        check_path_kind(tmp_path, "file")
    with pytest.raises(InputError, match="is a file, not a folder"):
        check_path_kind(tmp_path / "f.csv", "folder")
