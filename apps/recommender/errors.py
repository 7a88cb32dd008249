"""Input errors that name the file, row and field, so a person can find and fix the bad record."""

from __future__ import annotations

from core.errors import InputError


class DataError(InputError):
    """A bad record or column in an input file.

    The message reads ``"{path}: row {row} (line {line}), field 'item_id': {problem}"`` with the
    parts that are known; the parts are also kept as attributes for programs.

    Attributes:
        path: The file.
        row: 1-based record number (header excluded), if the problem is in one record.
        line: 1-based physical line of the record, for line-based formats without quoting.
        field: The column at fault.
        problem: What is wrong, and what to do about it.
    """
