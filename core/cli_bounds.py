"""Bounds of the ``aigc`` commands' numeric options, so that no number reaches a database or a date.

A row id past 2**63 - 1 overflows SQLite's and PostgreSQL's integers, and a day count in the
millions overflows ``datetime``; both used to end in an ``OverflowError`` traceback. Typer checks
these bounds while parsing, so such input is refused up front with the option's name (exit 2).

Example:
    >>> CaseArgument = Annotated[int, typer.Argument(min=1, max=MAX_ID)]
"""

from __future__ import annotations

import math

import typer

#: Largest row id a database stores (a signed 64-bit integer).
MAX_ID = 2**63 - 1
#: Most rows a listing option (``--limit``) or a batch size may ask for.
MAX_ROWS = 1_000_000
#: Longest period in days (100 years) an option may cover.
MAX_DAYS = 36_500


def finite_days(value: float, option: str = "--days") -> float:
    """``value`` when it is a finite number of days in ``[0, MAX_DAYS]``, else a typer usage error.

    Raises:
        typer.BadParameter: NaN, infinite, negative or past :data:`MAX_DAYS`.
    """
    if not math.isfinite(value) or not 0 <= value <= MAX_DAYS:
        raise typer.BadParameter(
            f"must be a number of days from 0 to {MAX_DAYS}, got {value}", param_hint=option
        )
    return value


__all__ = ["MAX_DAYS", "MAX_ID", "MAX_ROWS", "finite_days"]
