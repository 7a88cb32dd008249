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
