"""The app's input error: it names the file, row and field, so a person can find and fix the bad record.

Every reader of the app (:mod:`~apps.finance_monitor.sources`, :mod:`~apps.finance_monitor.datasets`,
:mod:`~apps.finance_monitor.scoring`) reads through :mod:`core.io.tables` with ``error=DataError``.
"""

from __future__ import annotations

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
