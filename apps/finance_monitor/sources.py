"""News items and the readers that turn CSV, JSON Lines, RSS 2.0 and Atom files (and bus messages) into them.

A :class:`NewsItem` has an id (given, or a stable hash of source, title and timestamp), a UTC
timestamp, a source, a title, an optional body and url, and tickers (a ``tickers`` column plus
the cashtags such as ``$AAPL`` found in title and body).

Columns / keys are matched by name with common aliases (``headline`` for ``title``,
``published`` for ``timestamp``, ...; see :data:`FIELD_ALIASES`). Timestamps in ISO 8601,
RFC 822 (RSS ``pubDate``), epoch seconds or milliseconds, or free formats with a zone
abbreviation (``EST``, ``CET``) are converted to UTC; a timestamp without a zone is taken to
be in ``assume_tz`` (UTC by default). XML is parsed with ``defusedxml`` (no entity expansion).
A bus message (:func:`parse_message`) is one JSON object with the keys of a JSON Lines record.
Every bad record raises :class:`~apps.finance_monitor.errors.DataError` naming file, row, field
(for a message: the masked bus URL with the message id, and the field).

Every reader builds its items in one place, which also makes them fit the ``finance_items`` table:
control characters (NUL, ...; tab and newline aside) and unpaired surrogates are removed from every
text field, as they carry no meaning and a database refuses them; a source name longer than
:data:`MAX_SOURCE_LENGTH` is cut to fit (logged); a url longer than :data:`MAX_URL_LENGTH` is
refused for its item (a shortened link would point elsewhere); the item's origin (file and row, or
bus URL and message id) keeps its last :data:`MAX_ORIGIN_LENGTH` characters.
"""

from __future__ import annotations

import hashlib
import html
import json
import logging
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, tzinfo
from pathlib import Path
from typing import Any
from xml.etree.ElementTree import Element, ParseError

import defusedxml.ElementTree as safe_et
from defusedxml import DefusedXmlException

from apps.finance_monitor.errors import DataError
from apps.finance_monitor.timestamps import parse_timestamp, to_utc
from core.control_chars import strip_control
from core.errors import check_path_kind
from core.io.tables import read_frame, read_rows

logger = logging.getLogger(__name__)

FIELD_ALIASES: dict[str, tuple[str, ...]] = {
    "id": ("id", "item_id", "guid"),
    "timestamp": (
        "timestamp",
        "published",
        "published_at",
        "pubdate",
        "date",
        "datetime",
        "time",
        "created_at",
    ),
    "source": ("source", "publisher", "feed"),
    "title": ("title", "headline", "text"),
    "body": ("body", "summary", "description", "content"),
    "tickers": ("tickers", "symbols", "entities"),
    "url": ("url", "link"),
}

CASHTAG = re.compile(r"(?<![\w$])\$([A-Za-z][A-Za-z0-9]{0,5}(?:\.[A-Za-z]{1,2})?)(?!\w)")
_TICKER_SPLIT = re.compile(r"[\s,;|]+")
_TAG = re.compile(r"<[^>]+>")
_ATOM = "{http://www.w3.org/2005/Atom}"
_DC_DATE = "{http://purl.org/dc/elements/1.1/}date"
MAX_ID_LENGTH = 128
MAX_SOURCE_LENGTH = 256  # finance_items.source
MAX_URL_LENGTH = 2048  # finance_items.url
MAX_ORIGIN_LENGTH = 1024  # finance_items.origin (the end is kept: file name and row)


@dataclass(frozen=True)
class NewsItem:
    """One news headline or story.

    Attributes:
        id: Unique id: the one given by the source, else :func:`stable_item_id`.
        timestamp: Publication time, timezone-aware UTC.
        source: Publisher or feed name.
        title: Headline (the text that is classified).
        body: Optional story text or summary.
        tickers: Upper-case symbols without ``$``, in order of first mention.
        url: Optional link.
        origin: ``"file:row"`` it was read from, for audits.
    """

    id: str
    timestamp: datetime
    source: str
    title: str
    body: str | None = None
    tickers: tuple[str, ...] = ()
    url: str | None = None
    origin: str | None = None


def extract_cashtags(text: str) -> list[str]:
    """Cashtags in ``text`` (``$AAPL``, ``$brk.b``), upper-cased, without ``$``, first mention first.

    Dollar amounts (``$5bn``) are not cashtags: a symbol starts with a letter.
    """
    return list(dict.fromkeys(m.group(1).upper() for m in CASHTAG.finditer(text)))


def stable_item_id(source: str, title: str, timestamp: datetime) -> str:
    """A 20-hex-digit id from source, title and UTC timestamp (case and spacing of source/title ignored)."""
    key = "\x1f".join(
        [" ".join(source.split()).lower(), " ".join(title.split()), to_utc(timestamp).isoformat()]
    )
    return hashlib.sha256(key.encode("utf-8")).hexdigest()[:20]


# --- readers -----------------------------------------------------------------------------------


def read_news(
    path: str | Path,
    *,
    default_source: str | None = None,
    assume_tz: tzinfo = UTC,
    dayfirst: bool = False,
    on_bad_record: Callable[[DataError], None] | None = None,
) -> list[NewsItem]:
    """Read news items from a CSV, JSON Lines, RSS 2.0 or Atom file (chosen by extension, then content).

    Repeats of the same item within the file (same id and content) are dropped.

    Args:
        path: The file.
        default_source: Source for records that name none (CSV/JSONL without a source column;
            feeds use their channel title).
        assume_tz: Zone of timestamps without one.
        dayfirst: Read ambiguous dates as day/month.
        on_bad_record: Called with the error of each bad record (a missing title, a bad timestamp,
            an over-long url, ...), which is then left out; default: the first one is raised.
            Errors of the whole file are raised either way.

    Returns:
        Items in file order.

    Raises:
        FileNotFoundError: No such file.
        DataError: Unknown format, missing fields, bad timestamps, the same id with different
            content twice, malformed CSV/JSON/XML, undecodable bytes.
    """
    path = check_path_kind(path, "file")
    if not path.is_file():
        raise FileNotFoundError(f"news file not found: {path}")
    raw = path.read_bytes()
    kind = _news_format(path, raw)
    records = _feed_records(path, raw) if kind == "feed" else _table_records(path, kind)
    items: list[NewsItem] = []
    for row, line, rec in records:
        try:
            items.append(_to_item(path, row, line, rec, default_source, assume_tz, dayfirst))
        except DataError as err:
            if on_bad_record is None:
                raise
            on_bad_record(err)
    return _drop_repeats(path, items)


def parse_records(
    records: Sequence[Mapping[str, Any]],
    origin: str = "request",
    *,
    default_source: str | None = None,
    assume_tz: tzinfo = UTC,
) -> list[NewsItem]:
    """News items from records already parsed (e.g. a JSON request body), checked like a file's rows.

    Args:
        records: One mapping per item, with the same keys as a JSON Lines file.
        origin: Name of where they came from, in errors and ``NewsItem.origin`` (rows count from 1).
        default_source: Source for records that name none.
        assume_tz: Zone of timestamps without one.

    Raises:
        DataError: A bad record (naming its row and field), or one id twice with different content.
    """
    path = Path(origin)
    items = [
        _to_item(path, row, None, rec, default_source, assume_tz, False) for row, rec in enumerate(records, 1)
    ]
    return _drop_repeats(path, items)


def parse_message(
    data: bytes, origin: str, *, default_source: str | None = None, assume_tz: tzinfo = UTC
) -> NewsItem:
    """One news item from a bus message: a UTF-8 JSON object with the keys of a JSON Lines record.

    Args:
        data: The payload.
        origin: Where it came from, e.g. ``redis://host:6379/news#1733-0`` (masked: no password),
            in errors and ``NewsItem.origin``.
        default_source: Source for messages that name none.
        assume_tz: Zone of timestamps without one.

    Raises:
        DataError: Not UTF-8, not a JSON object, or a bad field (named).
    """
    try:
        record = json.loads(data.decode("utf-8"))
    except UnicodeDecodeError as err:
        raise DataError(origin, f"payload is not UTF-8 ({err.reason} at byte {err.start})") from None
    except json.JSONDecodeError as err:
        raise DataError(origin, f"payload is not JSON ({err.msg} at char {err.pos})") from None
    if not isinstance(record, dict):
        raise DataError(
            origin, f"payload must be a JSON object with a title and a timestamp, got {type(record).__name__}"
        )
    rec = {str(k).strip().lower(): v for k, v in record.items()}
    return _to_item(origin, None, None, rec, default_source, assume_tz, False)


def encode_message(item: NewsItem) -> bytes:
    """``item`` as a bus message that :func:`parse_message` reads back to an equal item (origin aside)."""
    record: dict[str, Any] = {
        "id": item.id,
        "timestamp": item.timestamp.isoformat(),
        "source": item.source,
        "title": item.title,
        "body": item.body,
        "tickers": list(item.tickers),
        "url": item.url,
    }
    return json.dumps({k: v for k, v in record.items() if v not in (None, [])}, ensure_ascii=False).encode()


def _news_format(path: Path, raw: bytes) -> str:
    suffix = path.suffix.lower()
    if suffix in (".xml", ".rss", ".atom"):
        return "feed"
    if suffix in (".jsonl", ".ndjson"):
        return "jsonl"
    if suffix == ".csv":
        return "csv"
    head = raw.lstrip(b"\xef\xbb\xbf \t\r\n")[:1]
    if head == b"<":
        return "feed"
    if head == b"{":
        return "jsonl"
    raise DataError(path, "unknown news format: expected .csv, .jsonl, or an RSS/Atom .xml file")


_Rec = tuple[int, int | None, dict[str, Any]]


def _table_records(path: Path, kind: str) -> list[_Rec]:
    """CSV or JSON Lines records through :mod:`core.io.tables`, with column / key names lower-cased."""
    rows = read_rows(path, format=kind, error=DataError)
    records = [(r.row, r.line, {str(k).strip().lower(): v for k, v in r.items()}) for r in rows]
    if kind == "csv":
        header = records[0][2] if records else read_frame(path, format="csv", error=DataError).columns
        _resolve_columns(path, [str(h).lower() for h in header])
    return records


def _feed_records(path: Path, raw: bytes) -> list[_Rec]:
    try:
        root = safe_et.fromstring(raw)
    except ParseError as err:
        line = err.position[0] if getattr(err, "position", None) else None
        raise DataError(path, f"malformed XML ({err}); is the file truncated?", line=line) from err
    except DefusedXmlException as err:
        raise DataError(path, f"refused unsafe XML ({type(err).__name__}: {err})") from err
    if root.tag == "rss":
        channel = root.find("channel")
        if channel is None:
            raise DataError(path, "RSS file without a <channel> element", field="channel")
        feed_title = _text(channel.find("title"))
        return [(i, None, _rss_item(el, feed_title)) for i, el in enumerate(channel.findall("item"), start=1)]
    if root.tag == f"{_ATOM}feed":
        feed_title = _text(root.find(f"{_ATOM}title"))
        return [
            (i, None, _atom_entry(el, feed_title)) for i, el in enumerate(root.findall(f"{_ATOM}entry"), 1)
        ]
    raise DataError(path, f"XML root <{root.tag}> is neither RSS 2.0 <rss> nor Atom <feed>")


def _rss_item(el: Element, feed_title: str | None) -> dict[str, Any]:
    return {
        "id": _text(el.find("guid")),
        "title": _text(el.find("title")),
        "timestamp": _text(el.find("pubDate")) or _text(el.find(_DC_DATE)),
        "source": _text(el.find("source")) or feed_title,
        "body": _strip_html(_text(el.find("description"))),
        "url": _text(el.find("link")),
        "tickers": " ".join(
            _text(c) or "" for c in el.findall("category") if (_text(c) or "").startswith("$")
        ),
    }


def _atom_entry(el: Element, feed_title: str | None) -> dict[str, Any]:
    links = el.findall(f"{_ATOM}link")
    href = next((ln.get("href") for ln in links if ln.get("rel", "alternate") == "alternate"), None)
    source = el.find(f"{_ATOM}source/{_ATOM}title")
    return {
        "id": _text(el.find(f"{_ATOM}id")),
        "title": _strip_html(_text(el.find(f"{_ATOM}title"))),
        "timestamp": _text(el.find(f"{_ATOM}published")) or _text(el.find(f"{_ATOM}updated")),
        "source": _text(source) or feed_title,
        "body": _strip_html(_text(el.find(f"{_ATOM}summary")) or _text(el.find(f"{_ATOM}content"))),
        "url": href,
    }


def _text(el: Element | None) -> str | None:
    if el is None or el.text is None:
        return None
    return el.text.strip() or None


def _strip_html(text: str | None) -> str | None:
    if not text:
        return None
    return " ".join(html.unescape(_TAG.sub(" ", text)).split()) or None


# --- records to items --------------------------------------------------------------------------


def _resolve_columns(path: Path, header: Iterable[str]) -> None:
    names = set(header)
    for needed in ("title", "timestamp"):
        if not names.intersection(FIELD_ALIASES[needed]):
            raise DataError(
                path,
                f"missing column: one of {list(FIELD_ALIASES[needed])}; found {sorted(names)}",
                field=needed,
            )


def _pick(rec: Mapping[str, Any], name: str) -> Any:
    for alias in FIELD_ALIASES[name]:
        value = rec.get(alias)
        if value is not None and value != "":
            return value
    return None


def _to_item(
    path: str | Path,
    row: int | None,
    line: int | None,
    rec: Mapping[str, Any],
    default_source: str | None,
    assume_tz: tzinfo,
    dayfirst: bool,
) -> NewsItem:
    """The item of one record, its text fields cleaned and bounded (see the module docstring)."""

    def fail(field: str, problem: str) -> DataError:
        return DataError(path, problem, row=row, line=line, field=field)

    origin = bounded_origin(f"{path}:{row}" if row is not None else str(path))
    title = _pick(rec, "title")
    if not isinstance(title, str):
        raise fail("title", "missing title" if title is None else f"title must be text, got {title!r}")
    title = " ".join(strip_control(title).split())
    if not title:
        raise fail("title", "empty title")
    source = _pick(rec, "source") or default_source
    source = strip_control(str(source)).strip() if source else ""
    if not source:
        raise fail("source", "no source: add a 'source' column/key or pass default_source")
    if len(source) > MAX_SOURCE_LENGTH:  # a publisher's name: its start still names it
        logger.warning(
            "Source name cut to fit",
            extra={"origin": origin, "field": "source", "length": len(source), "kept": MAX_SOURCE_LENGTH},
        )
        source = source[:MAX_SOURCE_LENGTH].rstrip()
    raw_ts = _pick(rec, "timestamp")
    if raw_ts is None:
        raise fail("timestamp", "missing timestamp")
    try:
        timestamp = parse_timestamp(raw_ts, assume_tz=assume_tz, dayfirst=dayfirst)
    except (ValueError, OverflowError, OSError) as err:
        raise fail("timestamp", str(err)) from None
    body = _pick(rec, "body")
    body = (strip_control(str(body)).strip() or None) if body is not None else None
    url = _pick(rec, "url")
    url = (strip_control(str(url)).strip() or None) if url else None
    if url is not None and len(url) > MAX_URL_LENGTH:
        raise fail(
            "url",
            f"url of {len(url)} characters; at most {MAX_URL_LENGTH} fit, and a shortened link "
            "would point elsewhere",
        )
    return NewsItem(
        id=_given_id(rec) or stable_item_id(source, title, timestamp),
        timestamp=timestamp,
        source=source,
        title=title,
        body=body,
        tickers=_tickers(rec, title, body),
        url=url,
        origin=origin,
    )


def bounded_origin(origin: str) -> str:
    """``origin`` cleaned and cut to :data:`MAX_ORIGIN_LENGTH`, keeping its end (the file name, row
    or message id) behind an ellipsis: a deep folder's path still fits ``finance_items.origin``."""
    origin = strip_control(origin)
    if len(origin) <= MAX_ORIGIN_LENGTH:
        return origin
    return "…" + origin[-(MAX_ORIGIN_LENGTH - 1) :]


def _given_id(rec: Mapping[str, Any]) -> str:
    """The record's own id, cleaned ("" if none); a long one (a GUID URL) hashed to a short stable key."""
    given = _pick(rec, "id")
    item_id = strip_control(str(given)).strip() if given is not None else ""
    if len(item_id) > MAX_ID_LENGTH:
        item_id = hashlib.sha256(item_id.encode("utf-8")).hexdigest()[:40]
    return item_id


def _tickers(rec: Mapping[str, Any], title: str, body: str | None) -> tuple[str, ...]:
    """The given tickers, then the cashtags of title and body: upper case, no ``$``, each once."""
    given = _pick(rec, "tickers")
    if isinstance(given, list | tuple):
        given = " ".join(str(t) for t in given)
    tickers = [
        t.lstrip("$").upper() for t in _TICKER_SPLIT.split(strip_control(str(given or ""))) if t.strip("$ ")
    ]
    tickers += extract_cashtags(title) + extract_cashtags(body or "")
    return tuple(dict.fromkeys(tickers))


def _drop_repeats(path: Path, items: list[NewsItem]) -> list[NewsItem]:
    seen: dict[str, NewsItem] = {}
    kept: list[NewsItem] = []
    for item in items:
        first = seen.get(item.id)
        if first is None:
            seen[item.id] = item
            kept.append(item)
        elif replace(first, origin=None) != replace(item, origin=None):
            row = int(str(item.origin).rsplit(":", 1)[1])
            raise DataError(
                path,
                f"duplicate id {item.id!r} with different content (first at row "
                f"{str(first.origin).rsplit(':', 1)[1]})",
                row=row,
                field="id",
            )
    if len(kept) < len(items):
        logger.info("Dropped repeated items", extra={"path": str(path), "repeats": len(items) - len(kept)})
    return kept
