"""Synthetic sample data of the finance monitor (see make_sample.py and README.md)."""

from __future__ import annotations

from pathlib import Path

SAMPLE_DATA_DIR = Path(__file__).resolve().parent
STREAM_FILES: tuple[str, ...] = ("news_stream.csv", "news_stream.jsonl", "news_feed.xml")
#: The stream's eleven fictional companies (ticker, name, aliases), for entity linking in the demo.
SAMPLE_WATCHLIST = SAMPLE_DATA_DIR / "watchlist.csv"
