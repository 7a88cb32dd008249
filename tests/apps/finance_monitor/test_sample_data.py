"""The shipped sample data: reproducible, loadable, grouped as written, and its surge raises the alerts."""

from __future__ import annotations

import csv
from collections import Counter
from datetime import UTC, datetime

import sqlalchemy as sa

from apps.finance_monitor.alerts import AlertEngine
from apps.finance_monitor.datasets import load_labelled
from apps.finance_monitor.ingest import Ingestor
from apps.finance_monitor.rules import load_rules
from apps.finance_monitor.sample_data import SAMPLE_DATA_DIR, STREAM_FILES, make_sample
from apps.finance_monitor.storage import Item, ScoreRow, scored_frame, store_scores
from core.storage import session_scope


def _truth() -> dict[str, dict[str, str]]:
    with (SAMPLE_DATA_DIR / "news_truth.csv").open(newline="", encoding="utf-8") as fh:
        return {row["id"]: row for row in csv.DictReader(fh)}


def test_committed_files_match_the_generator(tmp_path):
    make_sample.main(tmp_path)
    written = sorted(p.name for p in tmp_path.iterdir())
    assert written == sorted([*STREAM_FILES, "news_truth.csv", "train_sentiment.csv", "train_topic.csv"])
    for name in written:
        assert (tmp_path / name).read_bytes() == (SAMPLE_DATA_DIR / name).read_bytes(), name


def test_training_files_load():
    sentiment = load_labelled(
        SAMPLE_DATA_DIR / "train_sentiment.csv", labels=["negative", "neutral", "positive"]
    )
    assert sentiment.label_counts() == {"negative": 120, "neutral": 120, "positive": 120}
    topic = load_labelled(SAMPLE_DATA_DIR / "train_topic.csv", dedup="exact")
    assert len(topic) == 300 and set(topic.label_counts().values()) == {50}
    assert "Energy | Oil" in topic.label_names


def test_stream_ingests_groups_copies_and_raises_the_surge_alerts(sqlite_db):
    ingestor = Ingestor(sqlite_db)
    results = [ingestor.ingest_file(SAMPLE_DATA_DIR / name) for name in STREAM_FILES]
    assert [len(r.new_ids) for r in results] == [299, 100, 107]
    truth = _truth()
    with session_scope(sqlite_db) as session:
        items = list(session.scalars(sa.select(Item)))
        assert {i.id for i in items} == set(truth)
        assert all(i.timestamp.tzinfo is not None for i in items)
        # Near-duplicate groups are exactly the written stories (whichever copy was read first names them).
        groups: dict[str, set[str]] = {}
        stories: dict[str, set[str]] = {}
        for item in items:
            groups.setdefault(item.group_id, set()).add(item.id)
            stories.setdefault(truth[item.id]["story_id"], set()).add(item.id)
        assert sorted(map(sorted, groups.values())) == sorted(map(sorted, stories.values()))
        store_scores(
            session,
            [
                ScoreRow(i.id, "truth", truth[i.id]["sentiment"], 1.0, truth[i.id]["topic"], 1.0)
                for i in items
            ],
        )
    assert Counter(t for i in items for t in i.tickers)["NWDE"] > 10
    with session_scope(sqlite_db) as session:
        frame = scored_frame(session)
    engine = AlertEngine(sqlite_db, load_rules(SAMPLE_DATA_DIR / "alert_rules.yaml"))
    alerts = engine.evaluate(frame)
    got = {(a.rule, a.key, a.window_start, a.window_end) for a in alerts}
    assert got == {
        (
            "topic-negative-surge",
            "Energy | Oil",
            datetime(2026, 3, 5, 13, tzinfo=UTC),
            datetime(2026, 3, 5, 16, tzinfo=UTC),
        ),
        (
            "ticker-negative-surge",
            "NWDE",
            datetime(2026, 3, 5, 15, tzinfo=UTC),
            datetime(2026, 3, 5, 16, tzinfo=UTC),
        ),
    }
    assert engine.evaluate(frame) == []  # a second run adds nothing
