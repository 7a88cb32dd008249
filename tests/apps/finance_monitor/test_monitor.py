"""The monitor loop: ingest -> score -> aggregate -> alert; repeatable; follows a folder; stops cleanly."""

from __future__ import annotations

import shutil
import threading
import time
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import SQLAlchemyError

from apps.finance_monitor.classifiers import load_model
from apps.finance_monitor.monitor import ALERT_WATERMARK, SAMPLE_RULES, Monitor
from apps.finance_monitor.rules import load_rules
from apps.finance_monitor.sample_data import SAMPLE_DATA_DIR, STREAM_FILES
from apps.finance_monitor.scoring import Scorer, score_pending
from apps.finance_monitor.sinks import LogSink
from apps.finance_monitor.storage import Alert, AlertItem, Delivery, Item, Score, get_watermark
from core.storage import create_engine, session_scope
from core.webhook_safety import AllowList
from core.webhooks import WebhookSink
from tests.apps.finance_monitor.model_fixtures import TruthScorer
from tests.webhook_receiver import Receiver

NOW = datetime(2026, 3, 6, 22, tzinfo=UTC)


def counts(engine) -> tuple[int, int, int, int]:
    with session_scope(engine) as session:
        return tuple(
            session.scalar(sa.select(sa.func.count()).select_from(t)) for t in (Item, Score, Alert, AlertItem)
        )


def truth_monitor(engine, tiny_sentiment_dir, sinks=(LogSink(),), **kw) -> Monitor:
    scorer = TruthScorer(load_model(tiny_sentiment_dir))
    return Monitor(engine, scorer, load_rules(SAMPLE_RULES), sinks, clock=lambda: NOW, **kw)


def test_sample_stream_raises_the_incident_alerts_once(db, tiny_sentiment_dir):
    monitor = truth_monitor(db, tiny_sentiment_dir)
    result = monitor.cycle(files=[SAMPLE_DATA_DIR / name for name in STREAM_FILES])
    assert result.new_items == 506 and result.scored == 506 and not result.errors
    with session_scope(db) as session:
        alerts = {(a.rule, a.key) for a in session.scalars(sa.select(Alert))}
    assert alerts == {("topic-negative-surge", "Energy | Oil"), ("ticker-negative-surge", "NWDE")}
    before = counts(db)
    again = monitor.cycle(files=[SAMPLE_DATA_DIR / name for name in STREAM_FILES])
    assert (again.new_items, again.scored, again.alerts) == (0, 0, [])
    assert counts(db) == before  # repeatable without duplicates


def test_bad_file_is_reported_and_the_others_still_go_in(sqlite_db, tiny_sentiment_dir, tmp_path):
    folder = tmp_path / "inbox"
    folder.mkdir()
    shutil.copy(SAMPLE_DATA_DIR / "news_stream.jsonl", folder)
    (folder / "broken.csv").write_text("timestamp,source,title\n2026-03-02T09:00:00Z,Wire\n")
    scorer = Scorer.from_dirs(tiny_sentiment_dir)
    monitor = Monitor(sqlite_db, scorer, load_rules(SAMPLE_RULES), clock=lambda: NOW)
    monitor.ingestor.min_age_s = 0
    result = monitor.cycle(folder)
    assert result.new_items == 100 and result.scored == 100
    assert len(result.errors) == 1 and "broken.csv" in result.errors[0] and "row 1" in result.errors[0]


def test_follow_picks_up_new_files_and_stops_on_request(sqlite_db, tiny_sentiment_dir, tmp_path):
    folder = tmp_path / "inbox"
    folder.mkdir()
    scorer = Scorer.from_dirs(tiny_sentiment_dir)
    monitor = Monitor(sqlite_db, scorer, load_rules(SAMPLE_RULES), clock=lambda: NOW)
    monitor.ingestor.min_age_s = 0
    stop, seen = threading.Event(), []
    worker = threading.Thread(target=lambda: seen.append(monitor.follow(folder, stop, poll_interval_s=0.05)))
    worker.start()
    try:
        shutil.copy(SAMPLE_DATA_DIR / "news_stream.jsonl", folder)
        deadline = time.monotonic() + 60
        while counts(sqlite_db)[1] < 100 and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        stop.set()
        worker.join(timeout=60)
    assert not worker.is_alive() and seen and seen[0] >= 1
    assert counts(sqlite_db)[:2] == (100, 100)


def test_follow_gives_up_after_repeated_database_failures(tmp_path, tiny_sentiment_dir):
    engine = create_engine(f"sqlite:///{tmp_path / 'empty.db'}")  # never migrated: every query fails
    monitor = Monitor(engine, Scorer.from_dirs(tiny_sentiment_dir), load_rules(SAMPLE_RULES))
    (tmp_path / "inbox").mkdir()
    with pytest.raises(SQLAlchemyError):
        monitor.follow(tmp_path / "inbox", threading.Event(), poll_interval_s=0, max_db_failures=2)


def test_scores_committed_before_a_kill_are_evaluated_on_restart(db, tiny_sentiment_dir):
    """Issue 12: killed after the last score batch and before the rules ran, the alerts still come."""
    first = truth_monitor(db, tiny_sentiment_dir)
    for name in STREAM_FILES:
        first.ingestor.ingest_file(SAMPLE_DATA_DIR / name)
    assert len(score_pending(db, first.scorer)) == 506  # ... and the process dies here
    restarted = truth_monitor(db, tiny_sentiment_dir)
    result = restarted.cycle()
    assert (result.scored, result.evaluated, len(result.alerts)) == (0, 506, 2)
    with session_scope(db) as session:
        assert get_watermark(session, ALERT_WATERMARK, "truth-v1") == session.scalar(
            sa.select(sa.func.max(Score.id))
        )
        assert session.scalar(sa.select(sa.func.count()).select_from(Delivery)) == 2  # log sink, 2 alerts
    assert restarted.cycle().evaluated == 0  # evaluated once


def test_follow_keeps_scoring_while_the_webhook_hangs(sqlite_db, tiny_sentiment_dir, tmp_path):
    folder = tmp_path / "inbox"
    folder.mkdir()
    with Receiver(["hang"] * 50, hang_s=3) as receiver:
        sink = WebhookSink(receiver.url, allow=AllowList.parse(["127.0.0.1"]), timeout=2)
        monitor = truth_monitor(sqlite_db, tiny_sentiment_dir, sinks=[sink])
        monitor.ingestor.min_age_s = 0
        stop, cycles = threading.Event(), []
        worker = threading.Thread(target=lambda: monitor.follow(folder, stop, 0.05, on_cycle=cycles.append))
        worker.start()
        try:
            shutil.copy(SAMPLE_DATA_DIR / "news_stream.csv", folder)
            deadline = time.monotonic() + 60
            while not any(c.alerts for c in cycles) and time.monotonic() < deadline:
                time.sleep(0.05)
            alerted = len(cycles)
            shutil.copy(SAMPLE_DATA_DIR / "news_stream.jsonl", folder)  # arrives while a delivery hangs
            while not (300 < counts(sqlite_db)[0] == counts(sqlite_db)[1]) and time.monotonic() < deadline:
                time.sleep(0.05)
            scored_at = time.monotonic()
        finally:
            stop.set()
            worker.join(timeout=60)
        assert alerted and counts(sqlite_db)[1] == 399  # one id of the JSONL file is also in the CSV
        assert receiver.bodies and scored_at < deadline  # the webhook was hanging meanwhile
    assert not worker.is_alive()
