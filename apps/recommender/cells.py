"""Reading tables and checking their cells: CSV/TSV/Parquet, row problems, timestamps, list cells.

Shared by :mod:`apps.recommender.interactions` (generic files) and :mod:`apps.recommender.public_datasets`
(public layouts). Every problem names the file, row and field (:class:`~apps.recommender.errors.DataError`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from apps.recommender.config import OnError
from apps.recommender.errors import DataError

logger = logging.getLogger(__name__)

# Accepted timestamp range (epoch seconds): 1800-01-01 .. 2100-01-01.
MIN_TIMESTAMP = -5_364_662_400
MAX_TIMESTAMP = 4_102_444_800


def as_str(series: pd.Series) -> pd.Series:
    """Strings with missing values as ``""`` (Parquet columns may be numeric or nullable)."""
    if pd.api.types.is_string_dtype(series) and series.map(lambda v: isinstance(v, str)).all():
        return series.astype(str).str.strip()
    return series.map(lambda v: "" if v is None or (isinstance(v, float) and np.isnan(v)) else str(v).strip())


class RowChecker:
    """Collects per-row problems: raises on the first (``raise``) or drops the rows (``skip``).

    Args:
        path: The file, for messages.
        n_rows: Rows in the table.
        on_error: ``raise`` or ``skip``.
        line_offset: For line-based files, line of row 1 minus 1 (1 with a header, 0 without);
            ``None`` leaves lines out of messages (CSV fields may span lines).
        row_numbers: Source row number of each position, when the table was derived from a file
            (default: position + 1).
    """

    def __init__(
        self,
        path: str | Path,
        n_rows: int,
        on_error: OnError,
        line_offset: int | None = None,
        row_numbers: np.ndarray | None = None,
    ) -> None:
        self.path = str(path)
        self.on_error = on_error
        self.line_offset = line_offset
        self.row_numbers = row_numbers
        self.bad = np.zeros(n_rows, dtype=bool)
        self.counts: dict[str, int] = {}
        self.examples: list[str] = []

    def flag(
        self, mask: Any, field: str, problem: Callable[[int], str], on_error: OnError | None = None
    ) -> None:
        """Record rows where ``mask`` is true; ``problem(position)`` describes one of them."""
        mask = np.asarray(mask, dtype=bool)
        rows = np.flatnonzero(mask & ~self.bad)
        if not len(rows):
            return
        first = int(rows[0])
        row = first + 1 if self.row_numbers is None else int(self.row_numbers[first])
        line = None if self.line_offset is None else row + self.line_offset
        error = DataError(self.path, problem(first), row=row, line=line, field=field)
        if (on_error or self.on_error) == "raise":
            raise error
        self.bad[rows] = True
        self.counts[field] = self.counts.get(field, 0) + len(rows)
        if len(self.examples) < 3:
            self.examples.append(str(error))

    def report(self, what: str) -> None:
        """Log a warning when rows were skipped."""
        if self.bad.any():
            logger.warning(
                "Skipped bad %s rows",
                what,
                extra={"path": self.path, "skipped": int(self.bad.sum()), "by_field": self.counts},
            )
            for example in self.examples:
                logger.warning("Skipped row: %s", example)


def blank(values: pd.Series) -> np.ndarray:
    """Mask of missing cells: ``""`` in text columns, NA in typed (Parquet) columns."""
    if pd.api.types.is_string_dtype(values) or values.dtype == object:
        return (as_str(values) == "").to_numpy()
    return values.isna().to_numpy()


def _seconds_from_datetimes(stamps: pd.Series) -> np.ndarray:
    """Float epoch seconds of tz-aware datetimes (NaN for NaT)."""
    return (stamps - pd.Timestamp(0, tz="UTC")).dt.total_seconds().to_numpy(dtype=float)


def parse_timestamps(values: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Epoch seconds from numbers, ISO 8601 strings or datetimes.

    Returns:
        ``(seconds, ok)``: int64 seconds (0 where not ok) and a mask of values that parsed and lie
        in 1800-2100. Empty values are not ok.
    """
    values = values.reset_index(drop=True)
    if pd.api.types.is_datetime64_any_dtype(values):
        seconds = _seconds_from_datetimes(pd.to_datetime(values, utc=True))
    elif pd.api.types.is_numeric_dtype(values):
        seconds = values.to_numpy(dtype=float, na_value=np.nan)
    else:
        text = as_str(values)
        seconds = np.array(pd.to_numeric(text, errors="coerce"), dtype=float)
        dated = np.isnan(seconds) & (text != "").to_numpy()
        if dated.any():
            stamps = pd.to_datetime(text[dated], utc=True, errors="coerce", format="ISO8601")
            seconds[dated] = _seconds_from_datetimes(stamps)
    ok = np.isfinite(seconds)
    ok[ok] &= (seconds[ok] >= MIN_TIMESTAMP) & (seconds[ok] < MAX_TIMESTAMP)
    return np.where(ok, np.floor(np.nan_to_num(seconds)), 0).astype(np.int64), ok


def timestamp_problem(raw: pd.Series) -> Callable[[int], str]:
    def problem(pos: int) -> str:
        value = raw.iloc[pos]
        if blank(raw.iloc[[pos]])[0]:
            return "empty timestamp; give epoch seconds or an ISO 8601 time"
        return (
            f"bad timestamp {value!r}; expected epoch seconds or ISO 8601 between 1800 and 2100 "
            "(epoch milliseconds? divide by 1000)"
        )

    return problem


def parse_list(value: Any, separator: str) -> list[str]:
    """A list cell as a de-duplicated list of non-empty strings (Parquet lists or separated text)."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return []
    parts = (
        [str(v) for v in value]
        if isinstance(value, (list, tuple, np.ndarray))
        else str(value).split(separator)
    )
    return list(dict.fromkeys(p.strip() for p in parts if p and p.strip()))
