"""Finance tables on SQLite and PostgreSQL: migration, idempotent items, score history, file records."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from apps.finance_monitor.sources import NewsItem
from apps.finance_monitor.storage import (
    FinanceBase,
    Score,
    ScoreRow,
    file_done,
    file_unchanged,
    get_items,
    record_file,
    scored_frame,
    store_items,
    store_scores,
    unscored_items,
)
from core.schema import current_revisions, migrate
from core.storage import create_engine, session_scope

T0 = datetime(2026, 3, 2, 9, tzinfo=UTC)


def _items(n: int = 3) -> list[NewsItem]:
    return [
        NewsItem(f"n{i}", T0 + timedelta(minutes=10 * i), "Wirewatch", f"Headline {i}", tickers=("ACME",))
        for i in range(n)
    ]


def test_migration_creates_finance_branch_matching_models(db):
    assert "finance_0005" in current_revisions(db)  # the head: the alert's baseline length
    with db.connect() as conn:
        context = MigrationContext.configure(
            conn,
            opts={
                "compare_type": True,
                "include_name": lambda n, t, _: t != "table" or n.startswith("finance_"),
            },
        )
        assert compare_metadata(context, FinanceBase.metadata) == []


def test_store_items_is_idempotent(db):
    items = _items()
    with session_scope(db) as session:
        assert store_items(session, items, groups={"n2": "n0"}) == ["n0", "n1", "n2"]
    with session_scope(db) as session:
        assert store_items(session, [*items, *_items(4)[3:]]) == ["n3"]
    with session_scope(db) as session:
        stored = get_items(session, ["n2", "n0", "n3", "n1"])
        assert [i.id for i in stored] == ["n0", "n1", "n2", "n3"]
        assert stored[2].group_id == "n0" and stored[0].group_id == "n0"
        assert stored[0].tickers == ["ACME"]
        assert stored[1].timestamp == T0 + timedelta(minutes=10)
        assert stored[1].timestamp.tzinfo is not None


def test_rescoring_keeps_history_per_model_version(db):
    with session_scope(db) as session:
        store_items(session, _items())
        store_scores(
            session,
            [ScoreRow(f"n{i}", "v1", "negative", 0.6, "Earnings", 0.5, scored_at=T0) for i in range(3)],
        )
    with session_scope(db) as session:
        # same version again: overwritten; a new version for two items: added
        store_scores(session, [ScoreRow("n0", "v1", "neutral", 0.7, scored_at=T0)])
        store_scores(
            session, [ScoreRow(f"n{i}", "v2", "positive", 0.9, scored_at=T0 + timedelta(1)) for i in (0, 1)]
        )
    with session_scope(db) as session:
        assert session.scalar(sa.select(sa.func.count()).select_from(Score)) == 5
        assert [i.id for i in unscored_items(session, "v2")] == ["n2"]
        latest = scored_frame(session)
        v1 = scored_frame(session, model_version="v1")
        window = scored_frame(session, start=T0 + timedelta(minutes=5), end=T0 + timedelta(minutes=15))
    assert list(latest["sentiment"]) == ["positive", "positive", "negative"]
    assert list(latest["model_version"]) == ["v2", "v2", "v1"]
    assert list(v1["sentiment"]) == ["neutral", "negative", "negative"]
    assert v1["topic"].isna().tolist() == [True, False, False] and v1["topic"].iloc[1] == "Earnings"
    assert list(window["item_id"]) == ["n1"]
    assert str(latest["timestamp"].dt.tz) == "UTC"
    assert latest["tickers"].tolist()[0] == ["ACME"]


def test_scored_frame_empty(db):
    with session_scope(db) as session:
        frame = scored_frame(session)
    assert frame.empty and "sentiment" in frame.columns


def test_file_records(db):
    meta = {"sha256": "ab" * 32, "size": 10, "mtime_ns": 123}
    with session_scope(db) as session:
        record_file(session, path="/in/a.csv", status="failed", error="bad row", **meta)
    with session_scope(db) as session:
        assert file_unchanged(session, "/in/a.csv", 10, 123)
        assert not file_unchanged(session, "/in/a.csv", 11, 123)
        assert file_done(session, meta["sha256"]) is None
        record_file(session, path="/in/a.csv", status="done", items=3, new_items=3, **meta)
    with session_scope(db) as session:
        done = file_done(session, meta["sha256"])
        assert done is not None and (done.items, done.error) == (3, None)


def test_reused_id_with_other_title_keeps_stored_item_and_warns(sqlite_db, caplog):
    with session_scope(sqlite_db) as session:
        store_items(session, _items(1))
    clash = NewsItem("n0", T0, "Quay", "A different story")
    with (
        caplog.at_level("WARNING", logger="apps.finance_monitor.storage"),
        session_scope(sqlite_db) as session,
    ):
        assert store_items(session, [clash]) == []
    assert "reuse stored ids" in caplog.text and caplog.records[0].ids == ["n0"]
    with session_scope(sqlite_db) as session:
        assert get_items(session, ["n0"])[0].title == "Headline 0"


def test_upgrade_from_finance_0001_adds_the_outbox_and_the_watermark(tmp_path):
    engine = create_engine(f"sqlite:///{tmp_path / 'old.db'}")
    migrate(engine, "finance_0001")
    assert not sa.inspect(engine).has_table("finance_deliveries")
    migrate(engine)
    assert {"finance_deliveries", "finance_watermarks"} <= set(sa.inspect(engine).get_table_names())
    engine.dispose()
