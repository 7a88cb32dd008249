"""A batch of news items with three that do not fit the items table as given, in every input form.

``n1`` has NUL and other control characters in its title (they are removed), ``s1`` a source name
longer than its column (cut to fit), ``u1`` a url of 3,018 characters (its item is refused, at row
:data:`BAD_ROW`); ``g1`` and ``g2`` are plain. Written as CSV, JSON Lines or RSS (XML cannot hold a
NUL, so the RSS batch has no ``n1``), or as bus messages.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from xml.sax.saxutils import escape

LONG_SOURCE = "Quay " + "q" * 300
LONG_URL = "https://news.test/" + "a" * 3000
RECORDS: list[dict[str, str]] = [
    {
        "id": "g1",
        "timestamp": "2026-03-02T09:00:00Z",
        "source": "Wirewatch",
        "title": "Northwind cuts 2026 outlook as refinery stays shut",
        "url": "https://news.test/g1",
    },
    {
        "id": "n1",
        "timestamp": "2026-03-02T09:05:00Z",
        "source": "Wirewatch",
        "title": "Qortex wins\x00 data centre\x1b contract in Ohio",
        "url": "https://news.test/n1",
    },
    {
        "id": "s1",
        "timestamp": "2026-03-02T09:10:00Z",
        "source": LONG_SOURCE,
        "title": "Fed officials see no rush to move rates",
        "url": "https://news.test/s1",
    },
    {
        "id": "u1",
        "timestamp": "2026-03-02T09:15:00Z",
        "source": "Wirewatch",
        "title": "Helio Motors recalls 40,000 sedans over brake fault",
        "url": LONG_URL,
    },
    {
        "id": "g2",
        "timestamp": "2026-03-02T09:20:00Z",
        "source": "Wirewatch",
        "title": "Acme names new finance chief",
        "url": "https://news.test/g2",
    },
]
BAD_ROW = 4  # u1 (row 3 in the RSS batch, which has no n1)
STORED = {"g1", "n1", "s1", "g2"}
CLEAN_TITLE = "Qortex wins data centre contract in Ohio"


def records(fmt: str) -> list[dict[str, str]]:
    """The records a batch in ``fmt`` holds."""
    return [r for r in RECORDS if fmt != "rss" or r["id"] != "n1"]


def write_batch(path: Path, fmt: str, rows: list[dict[str, str]] | None = None) -> Path:
    """Write ``rows`` (default: the batch) to ``path`` as ``csv``, ``jsonl`` or ``rss``."""
    rows = records(fmt) if rows is None else rows
    if fmt == "csv":
        with path.open("w", newline="", encoding="utf-8") as fh:
            writer = csv.DictWriter(fh, fieldnames=list(RECORDS[0]))
            writer.writeheader()
            writer.writerows(rows)
    elif fmt == "jsonl":
        path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    else:
        items = "".join(
            f"<item><guid>{r['id']}</guid><title>{escape(r['title'])}</title>"
            f"<pubDate>{r['timestamp']}</pubDate><link>{escape(r['url'])}</link>"
            f"<source>{escape(r['source'])}</source></item>"
            for r in rows
        )
        path.write_text(
            f'<?xml version="1.0"?><rss version="2.0"><channel><title>Wire</title>{items}</channel></rss>',
            encoding="utf-8",
        )
    return path


def messages() -> list[tuple[str, bytes]]:
    """The batch as bus messages, keyed by item id."""
    return [(r["id"], json.dumps(r).encode()) for r in RECORDS]
