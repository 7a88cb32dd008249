"""Input errors that name the file, row and field, so a person can find and fix the bad record.

Each app subclasses :class:`InputError` for its own inputs (``DataError``, ``SourceError``) and
documents there how it numbers rows.
"""

from __future__ import annotations

from pathlib import Path


class UserError(Exception):
    """An error whose message is meant for the person at the terminal (no traceback)."""


class InputError(ValueError):
    """A bad record or column in an input file.

    The message reads ``"{path}: row {row} (line {line}), field 'label': {problem}"`` with the
    parts that are known; the parts are also kept as attributes for programs.

    Attributes:
        path: The file.
        row: Record number (header excluded), if the problem is in one record; each app says
            whether it counts from 0 or 1.
        line: 1-based physical line where the record starts, where the format has lines.
        field: The column or element at fault.
        problem: What is wrong, and what to do about it.
    """

    def __init__(
        self,
        path: str | Path,
        problem: str,
        *,
        row: int | None = None,
        line: int | None = None,
        field: str | None = None,
    ) -> None:
        self.path = str(path)
        self.row = row
        self.line = line
        self.field = field
        self.problem = problem
        super().__init__(format_location(path, row=row, line=line, field=field) + problem)


def format_location(
    path: str | Path, *, row: int | None = None, line: int | None = None, field: str | None = None
) -> str:
    """``"file: row 3 (line 4), field 'x': "`` with whichever parts are given."""
    parts = [f"{path}:"]
    if row is not None:
        parts.append(f"row {row}" + (f" (line {line})" if line is not None else "") + ("," if field else ":"))
    elif line is not None:
        parts.append(f"line {line}" + ("," if field else ":"))
    if field is not None:
        parts.append(f"field {field!r}:")
    return " ".join(parts) + " "


def check_path_kind(path: str | Path, want: str) -> Path:
    """Raise :class:`InputError` when ``path`` exists but is a folder where a file belongs, or the reverse.

    Readers call it before their own "does not exist" check, so that a folder passed as a file (or a
    file passed as a folder) is named for what it is instead of being reported missing.

    Args:
        path: The path given.
        want: ``"file"`` or ``"folder"``.

    Returns:
        ``path`` as a :class:`~pathlib.Path`.
    """
    path = Path(path)
    if want == "file" and path.is_dir():
        raise InputError(path, "is a folder, not a file; give the path of a file")
    if want == "folder" and path.exists() and not path.is_dir():
        raise InputError(path, "is a file, not a folder; give the path of a folder")
    return path
