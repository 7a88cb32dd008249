"""Input errors that name the file, row and field, so a person can find and fix the bad record."""

from __future__ import annotations

import json
from pathlib import Path

from core.errors import InputError


class DataError(InputError):
    """A bad record in an input file.

    The message reads ``"{path}: row {row} (line {line}), field 'label': {problem}"`` with the
    parts that are known; the parts are also kept as attributes for programs.

    Attributes:
        path: The file.
        row: 1-based record number (header excluded), if the problem is in one record.
        line: 1-based physical line where the record starts, where the format has lines.
        field: The column or element at fault.
        problem: What is wrong, and what to do about it.
    """


def decode_bytes(raw: bytes, path: str | Path, encoding: str) -> str:
    """Decode ``raw`` strictly; on failure raise :class:`DataError` naming the line and byte.

    Args:
        raw: File contents.
        path: The file, for the message.
        encoding: Codec name; ``utf-8`` also strips a byte-order mark.

    Returns:
        The text.

    Raises:
        DataError: The bytes are not valid in ``encoding``.
    """
    codec = "utf-8-sig" if encoding.lower().replace("_", "-") in ("utf-8", "utf8") else encoding
    try:
        return raw.decode(codec)
    except UnicodeDecodeError as err:
        line = raw[: err.start].count(b"\n") + 1
        bad = raw[err.start : err.start + 4]
        raise DataError(
            path,
            f"cannot decode byte(s) {bad!r} at offset {err.start} as {encoding}; "
            "the file has another encoding (Financial PhraseBank files are Latin-1: pass encoding='latin-1')",
            line=line,
        ) from err
    except LookupError as err:
        raise ValueError(f"{path}: unknown encoding {encoding!r}") from err


def jsonl_objects(path: str | Path, text: str) -> list[tuple[int, int, dict]]:
    """Parse JSON Lines: ``(row, line, object)`` per non-blank line (row and line 1-based).

    Raises:
        DataError: A line that is not valid JSON (naming row and line) or not a JSON object.
    """
    records: list[tuple[int, int, dict]] = []
    for lineno, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        row = len(records) + 1
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as err:
            problem = f"invalid JSON ({err.msg} at column {err.colno}); is the file truncated?"
            raise DataError(path, problem, row=row, line=lineno) from err
        if not isinstance(obj, dict):
            raise DataError(path, f"expected a JSON object, got {type(obj).__name__}", row=row, line=lineno)
        records.append((row, lineno, obj))
    return records
