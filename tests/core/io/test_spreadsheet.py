"""CSV for spreadsheets: no cell runs as a formula; numbers and other text stay as they are."""

import csv
import io

import pandas as pd
import pytest

from core.io.spreadsheet import spreadsheet_csv, spreadsheet_safe


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        ('=HYPERLINK("http://evil.example","x")', '\'=HYPERLINK("http://evil.example","x")'),
        ("+1-555-0100 call now", "'+1-555-0100 call now"),
        ("-2+3", "'-2+3"),
        ("@SUM(A1:A9)", "'@SUM(A1:A9)"),
        ("\t=1+1", "'\t=1+1"),
        ("-0.5", "-0.5"),  # a number, read as one
        ("+3", "+3"),
        ("-12.5%", "-12.5%"),
        ("1e-3", "1e-3"),
        ("Shares fall - again", "Shares fall - again"),  # only the first character counts
        ("", ""),
        (None, None),
        (-1.5, -1.5),  # not text: untouched
    ],
)
def test_text_that_would_run_as_a_formula_gets_a_quote(value, shown):
    assert spreadsheet_safe(value) == shown


def test_spreadsheet_csv_quotes_formula_cells_and_header_only():
    frame = pd.DataFrame(
        {"actor": ["=cmd|' /C calc'!A0", "lena"], "score": [-1.0, 2.0], "=evil": ["@x", "fine"]}
    )
    rows = list(csv.reader(io.StringIO(spreadsheet_csv(frame))))
    assert rows == [
        ["actor", "score", "'=evil"],
        ["'=cmd|' /C calc'!A0", "-1.0", "'@x"],
        ["lena", "2.0", "fine"],
    ]
    assert list(frame["actor"])[0].startswith("=")  # the caller's frame is not changed
