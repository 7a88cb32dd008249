"""News readers: CSV, JSON Lines, RSS, Atom; timestamps to UTC; cashtags; ids; clear errors."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

import pytest

from apps.finance_monitor.errors import DataError
from apps.finance_monitor.sources import (
    extract_cashtags,
    parse_message,
    parse_records,
    read_news,
    stable_item_id,
)
from apps.finance_monitor.storage import Item
from apps.finance_monitor.timestamps import parse_timestamp
from tests.apps.finance_monitor.unfit_batch import CLEAN_TITLE, LONG_SOURCE, STORED, records, write_batch

SOURCE_COLUMN = Item.__table__.c.source.type.length  # 256
URL_COLUMN = Item.__table__.c.url.type.length  # 2048


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("2026-03-02T09:15:00Z", utc(2026, 3, 2, 9, 15)),
        ("2026-03-02T10:15:00+01:00", utc(2026, 3, 2, 9, 15)),
        ("2026-03-02 09:15", utc(2026, 3, 2, 9, 15)),  # naive: assumed UTC
        ("Mon, 02 Mar 2026 04:15:00 -0500", utc(2026, 3, 2, 9, 15)),  # RFC 822 (RSS)
        ("Mon, 02 Mar 2026 09:15:00 GMT", utc(2026, 3, 2, 9, 15)),
        ("March 2, 2026 4:15 AM EST", utc(2026, 3, 2, 9, 15)),
        ("2026-07-02 05:15 ET", utc(2026, 7, 2, 9, 15)),  # ET follows daylight saving (EDT in July)
        ("02 Mar 2026 10:15 CET", utc(2026, 3, 2, 9, 15)),
        ("1772442900", utc(2026, 3, 2, 9, 15)),  # epoch seconds
        ("1772442900000", utc(2026, 3, 2, 9, 15)),  # epoch milliseconds
        (1772442900, utc(2026, 3, 2, 9, 15)),
        (datetime(2026, 3, 2, 18, 15, tzinfo=timezone(timedelta(hours=9))), utc(2026, 3, 2, 9, 15)),
    ],
)
def test_parse_timestamp_to_utc(raw, expected):
    got = parse_timestamp(raw)
    assert got == expected
    assert got.utcoffset() == timedelta(0)


def test_parse_timestamp_assume_tz_and_dayfirst():
    cet = timezone(timedelta(hours=1))
    assert parse_timestamp("2026-03-02 10:15", assume_tz=cet) == utc(2026, 3, 2, 9, 15)
    assert parse_timestamp("03/04/2026 12:00") == utc(2026, 3, 4, 12)
    assert parse_timestamp("03/04/2026 12:00", dayfirst=True) == utc(2026, 4, 3, 12)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("", "expected a timestamp"),
        ("yesterday-ish", "cannot parse timestamp"),
        ("10:30", "no full date"),  # dateutil would fill in today's date
        ("2026-03-02 09:15 XYZT", "unknown time zone"),
        (None, "expected a timestamp"),
        ("9999-12-31", r"9999-12-31T00:00:00\+00:00 is before 1970 or more than 1 day ahead of now"),
        ("0001-01-01T00:00:00Z", "is before 1970"),
        ("0001-01-01T00:00:00+05:00", "out of range"),
        ("1969-12-31T23:59:59Z", "is before 1970"),
        (99999999999999999999, "epoch time .* is out of range"),
        (float("nan"), "epoch time nan is out of range"),
        (True, "expected a timestamp"),
    ],
)
def test_parse_timestamp_errors(raw, message):
    with pytest.raises(ValueError, match=message):
        parse_timestamp(raw)


def test_cashtags():
    text = "$ACME and $brk.b up; $ACME again, $5bn deal, US$ figures, price $12.50, end $NWE."
    assert extract_cashtags(text) == ["ACME", "BRK.B", "NWE"]
    assert extract_cashtags("no tags here") == []


def test_stable_id_ignores_case_and_spacing_of_source():
    ts = utc(2026, 3, 2, 9, 15)
    a = stable_item_id("Wirewatch", "Acme  beats estimates", ts)
    assert a == stable_item_id(
        " wirewatch ", "Acme beats estimates", ts.astimezone(timezone(timedelta(hours=2)))
    )
    assert a != stable_item_id("Wirewatch", "Acme beats estimates", ts + timedelta(seconds=1))
    assert len(a) == 20


def test_csv_with_aliases_quotes_and_tickers(tmp_path):
    path = tmp_path / "news.csv"
    path.write_bytes(
        b"Published,Publisher,Headline,Summary,Tickers\r\n"
        b'2026-03-02T09:15:00Z,Wirewatch,"$ACME beats, lifts outlook","Line one\nline two",NWE;$qrt\r\n'
        b"2026-03-02T10:00:00+01:00,Quay,Oil slips,,\r\n"
    )
    items = read_news(path)
    assert [i.title for i in items] == ["$ACME beats, lifts outlook", "Oil slips"]
    assert items[0].body == "Line one\nline two"
    assert items[0].tickers == ("NWE", "QRT", "ACME")
    assert items[1].timestamp == utc(2026, 3, 2, 9)
    assert items[1].body is None and items[1].tickers == ()
    assert items[0].id == stable_item_id("Wirewatch", "$ACME beats, lifts outlook", utc(2026, 3, 2, 9, 15))
    assert items[0].origin == f"{path}:1"


def test_csv_bad_timestamp_names_row_line_field(tmp_path):
    path = tmp_path / "news.csv"
    path.write_text(
        'timestamp,source,title\n2026-03-02T09:15:00Z,W,"two\nlines"\nsoon,W,Oil slips\n', encoding="utf-8"
    )
    with pytest.raises(DataError) as info:
        read_news(path)
    assert (info.value.row, info.value.line, info.value.field) == (2, 4, "timestamp")
    assert "cannot parse timestamp 'soon'" in str(info.value)


def test_csv_missing_columns_and_source(tmp_path):
    path = tmp_path / "news.csv"
    path.write_text("when,source,title\n2026-03-02,W,x\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"field 'timestamp': missing column: one of \['timestamp'"):
        read_news(path)
    path.write_text("timestamp,title\n2026-03-02,x\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"row 1 \(line 2\), field 'source': no source"):
        read_news(path)
    assert read_news(path, default_source="Desk")[0].source == "Desk"
    path.write_text("timestamp,source,title\n2026-03-02,W,  \n", encoding="utf-8")
    with pytest.raises(DataError, match=r"field 'title': empty title"):
        read_news(path)


def test_duplicate_ids(tmp_path):
    path = tmp_path / "news.jsonl"
    rec = {"id": "n1", "timestamp": "2026-03-02T09:15:00Z", "source": "W", "title": "Acme up"}
    path.write_text("\n".join(json.dumps(r) for r in [rec, rec, {**rec, "id": "n2"}]), encoding="utf-8")
    assert [i.id for i in read_news(path)] == ["n1", "n2"]  # exact repeat dropped
    path.write_text("\n".join(json.dumps(r) for r in [rec, {**rec, "title": "Acme down"}]), encoding="utf-8")
    with pytest.raises(
        DataError, match=r"row 2, field 'id': duplicate id 'n1' with different content \(first at row 1\)"
    ):
        read_news(path)


def test_jsonl_truncated_and_non_object(tmp_path):
    path = tmp_path / "news.jsonl"
    good = json.dumps({"timestamp": 1772442900, "source": "W", "title": "Acme up", "tickers": ["acme"]})
    path.write_text(good + "\n" + good[:20], encoding="utf-8")
    with pytest.raises(DataError, match=r"row 2 \(line 2\): not valid JSON"):
        read_news(path)
    path.write_text(good + "\n[1, 2]\n", encoding="utf-8")
    with pytest.raises(DataError, match="expected a JSON object, got list"):
        read_news(path)
    path.write_text(good, encoding="utf-8")
    assert read_news(path)[0].tickers == ("ACME",)


RSS = """<?xml version="1.0" encoding="UTF-8"?>
<rss version="2.0" xmlns:dc="http://purl.org/dc/elements/1.1/">
<channel><title>Quay Newswire</title>
<item><title>Northwind cuts guidance &amp; shares drop</title>
  <link>https://example.test/a</link><guid>quay-001</guid>
  <pubDate>Mon, 02 Mar 2026 04:15:00 -0500</pubDate>
  <description>&lt;p&gt;Northwind &lt;b&gt;$NWE&lt;/b&gt; lowered its outlook.&lt;/p&gt;</description>
  <category>$NWE</category><category>Energy</category></item>
<item><title>Acme opens plant</title><dc:date>2026-03-02T11:00:00+02:00</dc:date>
  <source url="https://other.test">Harbor Street Journal</source></item>
</channel></rss>"""

ATOM = """<?xml version="1.0" encoding="utf-8"?>
<feed xmlns="http://www.w3.org/2005/Atom"><title>Market Ledger</title>
<entry><id>urn:ledger:1</id><title>Qortex beats on revenue</title>
  <link rel="alternate" href="https://example.test/q"/><published>2026-03-02T09:15:00Z</published>
  <updated>2026-03-03T00:00:00Z</updated><summary>$QRT shares up 4%</summary></entry>
<entry><id>urn:ledger:2</id><title>Fed minutes due</title><updated>2026-03-02T12:00:00Z</updated></entry>
</feed>"""


def test_rss(tmp_path):
    path = tmp_path / "feed.xml"
    path.write_text(RSS, encoding="utf-8")
    first, second = read_news(path)
    assert first.id == "quay-001" and first.source == "Quay Newswire"
    assert first.title == "Northwind cuts guidance & shares drop"
    assert first.body == "Northwind $NWE lowered its outlook."
    assert first.timestamp == utc(2026, 3, 2, 9, 15)
    assert first.tickers == ("NWE",) and first.url == "https://example.test/a"
    assert second.source == "Harbor Street Journal" and second.timestamp == utc(2026, 3, 2, 9)


def test_atom(tmp_path):
    path = tmp_path / "feed.atom"
    path.write_text(ATOM, encoding="utf-8")
    first, second = read_news(path)
    assert (first.id, first.source, first.url) == ("urn:ledger:1", "Market Ledger", "https://example.test/q")
    assert first.timestamp == utc(2026, 3, 2, 9, 15)  # published wins over updated
    assert first.tickers == ("QRT",)
    assert second.timestamp == utc(2026, 3, 2, 12)


def test_feed_errors(tmp_path):
    path = tmp_path / "feed.xml"
    path.write_text(RSS[: len(RSS) // 2], encoding="utf-8")
    with pytest.raises(DataError, match=r"line \d+: malformed XML"):
        read_news(path)
    path.write_text(RSS.replace("<pubDate>Mon, 02 Mar 2026 04:15:00 -0500</pubDate>", ""), encoding="utf-8")
    with pytest.raises(DataError, match=r"row 1, field 'timestamp': missing timestamp"):
        read_news(path)
    path.write_text("<html><body/></html>", encoding="utf-8")
    with pytest.raises(DataError, match="neither RSS 2.0"):
        read_news(path)


def test_feed_entity_expansion_is_refused(tmp_path):
    path = tmp_path / "bomb.xml"
    path.write_text(
        '<?xml version="1.0"?><!DOCTYPE r [<!ENTITY a "aaaa"><!ENTITY b "&a;&a;&a;">]>'
        "<rss><channel><title>&b;</title></channel></rss>",
        encoding="utf-8",
    )
    with pytest.raises(DataError, match="refused unsafe XML"):
        read_news(path)


def test_unknown_format_and_missing_file(tmp_path):
    path = tmp_path / "news.txt"
    path.write_text("just words\n", encoding="utf-8")
    with pytest.raises(DataError, match="unknown news format"):
        read_news(path)
    with pytest.raises(FileNotFoundError, match="missing.csv"):
        read_news(tmp_path / "missing.csv")


# --- items that must fit the items table ------------------------------------------------------------


def test_control_characters_and_lone_surrogates_are_removed_from_every_text_field():
    record = {
        "id": "a\x00b",
        "timestamp": "2026-03-02T09:00:00Z",
        "source": "Wire\x00watch\x7f",
        "title": "Acme\x00 $AC\x01ME \ud800cuts\x9b outlook",
        "body": "Line\x00 one\nline two\t\x0c",
        "url": "https://news.test/a\x00b",
        "tickers": "NW\x00DE",
    }
    for item in (parse_message(json.dumps(record).encode(), "bus#1"), parse_records([record])[0]):
        assert (item.id, item.source, item.title) == ("ab", "Wirewatch", "Acme $ACME cuts outlook")
        assert (item.body, item.url, item.tickers) == (
            "Line one\nline two",
            "https://news.test/ab",
            ("NWDE", "ACME"),
        )
    with pytest.raises(DataError, match="row 1, field 'title': empty title"):
        parse_records([{**record, "title": "\x00\x01"}])


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "rss"])
def test_a_source_too_long_is_cut_to_its_column_and_a_url_too_long_refused(tmp_path, fmt, caplog):
    path = write_batch(tmp_path / f"batch.{fmt}", fmt)
    rows = {r["id"]: row for row, r in enumerate(records(fmt), 1)}  # the RSS batch has no n1
    with pytest.raises(DataError) as info:
        read_news(path)
    assert (info.value.row, info.value.field) == (rows["u1"], "url")
    assert str(info.value).startswith(f"{path}: row {rows['u1']}")
    assert "field 'url': url of 3018 characters; at most 2048 fit" in str(info.value)

    caplog.clear()
    bad: list[DataError] = []
    items = {i.id: i for i in read_news(path, on_bad_record=bad.append)}
    assert [e.row for e in bad] == [rows["u1"]] and set(items) == STORED & set(rows)
    assert items["s1"].source == LONG_SOURCE[:SOURCE_COLUMN] and len(items["s1"].source) == 256
    cut = [r for r in caplog.records if r.getMessage() == "Source name cut to fit"]
    assert [(r.origin, r.field, r.length) for r in cut] == [(f"{path}:{rows['s1']}", "source", 305)]
    if "n1" in items:
        assert items["n1"].title == CLEAN_TITLE


def test_a_url_as_long_as_its_column_is_kept():
    record = {"timestamp": "2026-03-02T09:00:00Z", "source": "W", "title": "Acme up"}
    url = "https://news.test/" + "a" * (URL_COLUMN - 18)
    assert parse_records([{**record, "url": url}])[0].url == url
    with pytest.raises(DataError, match="bus#7: field 'url': url of 2049 characters"):
        parse_message(json.dumps({**record, "url": url + "b"}).encode(), "bus#7")
