"""Timestamps from news sources, in whatever format and zone, to timezone-aware UTC.

Accepted: ``datetime`` objects, epoch seconds or milliseconds, ISO 8601, RFC 822 (RSS
``pubDate``) and free formats that ``dateutil`` reads, with a numeric offset or a zone
abbreviation from :data:`TZ_ABBREVIATIONS`. A timestamp without a zone is taken to be in
``assume_tz`` (UTC by default). Unknown abbreviations and texts without a full date are errors,
never guesses, and so is a time before 1970 or more than a day past now (:data:`EARLIEST`,
:data:`MAX_AHEAD`): a wrong year or unit, which would otherwise stretch every alert evaluation
over decades of empty hourly buckets.
"""

from __future__ import annotations

import re
import warnings
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any

from dateutil import parser as date_parser
from dateutil import tz as dateutil_tz

# Zone abbreviations seen in news feeds; the US/European names follow daylight saving via tz rules.
TZ_ABBREVIATIONS: dict[str, Any] = {
    "UTC": 0, "GMT": 0, "Z": 0, "UT": 0,
    "ET": dateutil_tz.gettz("America/New_York"), "EST": -5 * 3600, "EDT": -4 * 3600,
    "CT": dateutil_tz.gettz("America/Chicago"), "CST": -6 * 3600, "CDT": -5 * 3600,
    "MST": -7 * 3600, "MDT": -6 * 3600, "PT": dateutil_tz.gettz("America/Los_Angeles"),
    "PST": -8 * 3600, "PDT": -7 * 3600, "BST": 3600, "CET": 3600, "CEST": 2 * 3600,
    "EET": 2 * 3600, "EEST": 3 * 3600, "HKT": 8 * 3600, "SGT": 8 * 3600, "JST": 9 * 3600,
    "AEST": 10 * 3600, "AEDT": 11 * 3600,
}  # fmt: skip

_EPOCH = re.compile(r"\d{9,13}(\.\d+)?")
#: The earliest timestamp accepted (UTC).
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
#: How far past the current time a timestamp may lie (a source's clock or zone slightly off).
MAX_AHEAD = timedelta(days=1)


def parse_timestamp(value: Any, *, assume_tz: tzinfo = UTC, dayfirst: bool = False) -> datetime:
    """Parse a timestamp in any common format to an aware UTC datetime.

    Args:
        value: A ``datetime``, epoch seconds/milliseconds (number or digit string), ISO 8601,
            RFC 822 (``Mon, 02 Mar 2026 09:15:00 -0500``) or a free format with a known zone
            abbreviation (:data:`TZ_ABBREVIATIONS`).
        assume_tz: Zone of timestamps that carry none.
        dayfirst: Read ``03/04/2026`` as 3 April instead of March 4.

    Returns:
        The time in UTC.

    Raises:
        ValueError: Empty, unparseable, incomplete (no date), an unknown zone abbreviation, or a time
            before :data:`EARLIEST` or more than :data:`MAX_AHEAD` past now.
    """
    if isinstance(value, datetime):
        parsed = value
    elif isinstance(value, bool) or value is None:
        raise ValueError(f"expected a timestamp, got {value!r}")
    elif isinstance(value, int | float) or (isinstance(value, str) and _EPOCH.fullmatch(value)):
        number = float(value)
        try:
            parsed = datetime.fromtimestamp(number / 1000 if number > 1e11 else number, tz=UTC)
        except (OverflowError, OSError, ValueError):  # NaN, infinity, or past the platform's range
            raise ValueError(f"epoch time {value!r} is out of range") from None
    elif isinstance(value, str) and value.strip():
        parsed = _parse_text_timestamp(value.strip(), dayfirst)
    else:
        raise ValueError(f"expected a timestamp, got {value!r}")
    if parsed.tzinfo is None or parsed.utcoffset() is None:
        parsed = parsed.replace(tzinfo=assume_tz)
    try:
        parsed = to_utc(parsed)
    except OverflowError:  # year 1 or 9999 moved past the calendar by its zone
        raise ValueError(f"{value!r} is out of range") from None
    latest = datetime.now(UTC) + MAX_AHEAD
    if not EARLIEST <= parsed <= latest:
        # One item in year 9999 (or 0001) made every later rule evaluation span thousands of years of
        # hourly buckets: a typo or a wrong unit, never news.
        raise ValueError(
            f"{parsed.isoformat()} is before {EARLIEST.year} or more than {MAX_AHEAD.days} day ahead of "
            "now: check the year, the unit (seconds or milliseconds) and the time zone"
        )
    return parsed


def _parse_text_timestamp(text: str, dayfirst: bool) -> datetime:
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        pass
    # dateutil also reads RFC 822 (email.utils is not used: it silently drops unknown zones).
    # Parse with two different defaults: if they differ, the text lacked a date part and dateutil
    # would silently have filled in today's date.
    results = []
    for default in (datetime(2001, 1, 1), datetime(2002, 2, 2)):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error", date_parser.UnknownTimezoneWarning)
                results.append(
                    date_parser.parse(text, default=default, tzinfos=TZ_ABBREVIATIONS, dayfirst=dayfirst)
                )
        except date_parser.UnknownTimezoneWarning as err:
            raise ValueError(f"unknown time zone in {text!r} ({err}); use an offset such as +01:00") from None
        except (ValueError, OverflowError) as err:
            raise ValueError(f"cannot parse timestamp {text!r} ({err})") from None
    if results[0] != results[1]:
        raise ValueError(f"timestamp {text!r} has no full date (year, month and day)")
    return results[0]


def to_utc(ts: datetime) -> datetime:
    """An aware datetime converted to UTC; naive ones are refused (their zone is unknown)."""
    if ts.tzinfo is None:
        raise ValueError(f"naive datetime {ts.isoformat()}: attach a time zone")
    return ts.astimezone(UTC)
