"""Errors of the support app that name the file, row and field, so a person can fix the input."""

from __future__ import annotations

from core.errors import InputError


class SourceError(InputError):
    """A bad knowledge-base source file or record.

    The message reads ``"{path}: row {row} (line {line}), field 'question': {problem}"`` with the
    parts that are known. ``row`` is the 0-based data record number (header excluded), the same
    number that default FAQ ids use (``faq.csv#12``); ``line`` is the 1-based physical line where
    the record starts, for editors. The app's files are read by :mod:`core.io.tables` with
    ``row_base=0, error=SourceError``.

    Attributes:
        path: The file.
        row: 0-based record number, if the problem is in one record.
        line: 1-based physical line, where the format has lines.
        field: The column or key at fault.
        problem: What is wrong, and what to do about it.
    """


class KBFormatError(ValueError):
    """A knowledge-base directory that is not one, or whose files are corrupt or inconsistent."""


__all__ = ["KBFormatError", "SourceError"]
