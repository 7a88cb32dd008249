"""Errors of the support app that name the file, row and field, so a person can fix the input."""

from __future__ import annotations

from pathlib import Path

from core.errors import InputError


class SourceError(InputError):
    """A bad knowledge-base source file or record.

    The message reads ``"{path}: row {row} (line {line}), field 'question': {problem}"`` with the
    parts that are known. ``row`` is the 0-based data record number (header excluded), the same
    number that default FAQ ids use (``faq.csv#12``); ``line`` is the 1-based physical line where
    the record starts, for editors.

    Attributes:
        path: The file.
        row: 0-based record number, if the problem is in one record.
        line: 1-based physical line, where the format has lines.
        field: The column or key at fault.
        problem: What is wrong, and what to do about it.
    """


class KBFormatError(ValueError):
    """A knowledge-base directory that is not one, or whose files are corrupt or inconsistent."""


def read_utf8(path: str | Path) -> str:
    """Read a text file as UTF-8.

    Raises:
        SourceError: The path is a folder, or the bytes are not valid UTF-8.
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
    except IsADirectoryError as err:
        raise SourceError(path, "is a folder, expected a file") from err
    return decode_utf8(raw, path)


def decode_utf8(raw: bytes, path: str | Path) -> str:
    """Decode ``raw`` as UTF-8 (a byte-order mark is dropped) or raise naming the line and offset.

    Raises:
        SourceError: The bytes are not valid UTF-8.
    """
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = raw[: err.start].count(b"\n") + 1
        bad = raw[err.start : err.start + 4]
        raise SourceError(
            path,
            f"not valid UTF-8: byte(s) {bad!r} at offset {err.start}; re-save the file as UTF-8",
            line=line,
        ) from err
