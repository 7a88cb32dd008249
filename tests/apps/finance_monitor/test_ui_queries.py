"""Dashboard queries: hand-computed toy frames, and the sample stream in SQLite and PostgreSQL."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest
import sqlalchemy as sa

from apps.finance_monitor import alerts as alerts_module
from apps.finance_monitor.storage import AlertItem
from apps.finance_monitor.ui import queries
from core.storage import create_engine, session_scope
from tests.apps.finance_monitor.sample_db import (
    fill_sample_db,
    rescore_energy_as_neutral,
    truth_labels,
)

T0 = datetime(2026, 3, 2, 9, tzinfo=UTC)


def scored(rows: list[tuple]) -> pd.DataFrame:
    """rows: (item_id, minutes after T0, sentiment, confidence, topic, tickers, group_id or None)."""
    return pd.DataFrame(
        [
            {
                "item_id": item_id,
                "timestamp": T0 + timedelta(minutes=minutes),
                "source": "Wirewatch",
                "title": f"Headline {item_id}",
                "tickers": tickers,
                "group_id": group or item_id,
                "model_version": "v1",
                "sentiment": sentiment,
                "sentiment_confidence": confidence,
                "topic": topic,
                "topic_confidence": 0.9,
                "scored_at": T0,
            }
            for item_id, minutes, sentiment, confidence, topic, tickers, group in rows
        ]
    )


TOY = scored(
    [
        ("a", 0, "negative", 0.9, "Energy", ["NWDE"], None),
        ("a2", 5, "negative", 0.8, "Energy", ["NWDE"], "a"),  # syndicated copy of a
        ("b", 10, "positive", 0.5, "Energy", [], None),
        ("c", 30, "neutral", 0.7, "Earnings", ["NWDE", "QRTX"], None),
        ("d", 70, "negative", 0.6, "Earnings", ["QRTX"], None),
        ("e", 75, "positive", 0.95, "Earnings", [], None),
    ]
)


# --- time ranges -------------------------------------------------------------------------------------


def test_resolve_range_ends_after_the_newest_item_and_clips_to_the_oldest():
    newest = datetime(2026, 3, 6, 20, 50, tzinfo=UTC)
    oldest = datetime(2026, 3, 2, 6, 2, tzinfo=UTC)
    start, end = queries.resolve_range("Last 24 hours", newest, oldest)
    assert (start, end) == (datetime(2026, 3, 5, 21, tzinfo=UTC), datetime(2026, 3, 6, 21, tzinfo=UTC))
    assert queries.resolve_range("Last 30 days", newest, oldest)[0] == datetime(2026, 3, 2, 6, tzinfo=UTC)
    assert queries.resolve_range("All", newest, oldest) == (None, None)
    assert queries.resolve_range("Last 7 days", None) == (None, None)
    with pytest.raises(ValueError, match="unknown time range 'Last week'"):
        queries.resolve_range("Last week", newest)


# --- breakdowns and item lists -------------------------------------------------------------------------


def test_topic_breakdown_counts_copies_once_and_weights_by_confidence():
    table = queries.topic_breakdown(TOY).set_index("key")
    assert list(table.index) == ["Earnings", "Energy"]  # 3 stories each: tie broken by name
    energy = table.loc["Energy"]
    assert (energy["stories"], energy["negative"], energy["neutral"], energy["positive"]) == (2, 1, 0, 1)
    assert energy["share_negative"] == 0.5
    assert energy["mean_sentiment"] == pytest.approx((-0.9 + 0.5) / (0.9 + 0.5))
    earnings = table.loc["Earnings"]
    assert earnings["stories"] == 3
    assert earnings["mean_sentiment"] == pytest.approx((-0.6 + 0.95) / (0.7 + 0.6 + 0.95))
    assert earnings["mean_confidence"] == pytest.approx((0.7 + 0.6 + 0.95) / 3)


def test_breakdown_by_entity_explodes_tickers():
    table = queries.topic_breakdown(TOY, by="entity").set_index("key")
    assert table["stories"].to_dict() == {"NWDE": 2, "QRTX": 2}
    assert table.loc["QRTX", "negative"] == 1
    assert queries.key_options(TOY, "entity") == ["NWDE", "QRTX"]
    assert queries.topic_breakdown(TOY.iloc[0:0]).empty


def test_latest_items_collapse_copies_filter_and_limit():
    latest = queries.latest_items(TOY, limit=10)
    assert list(latest["item_id"]) == ["e", "d", "c", "b", "a"]
    assert latest.set_index("item_id").loc["a", "copies"] == 2
    assert list(latest.columns) == queries.ITEM_COLUMNS
    assert list(queries.latest_items(TOY, limit=2)["item_id"]) == ["e", "d"]
    negative = queries.latest_items(TOY, sentiments=["negative"], topics=["Energy"])
    assert list(negative["item_id"]) == ["a"]
    assert list(queries.latest_items(TOY, search="headline C")["item_id"]) == ["c"]
    assert queries.latest_items(TOY.iloc[0:0]).empty


def test_extreme_items_rank_by_confidence():
    assert list(queries.extreme_items(TOY, "negative")["item_id"]) == ["a", "d"]
    assert list(queries.extreme_items(TOY, "positive")["item_id"]) == ["e", "b"]
    assert list(queries.extreme_items(TOY, "positive", topics=["Energy"])["item_id"]) == ["b"]
    with pytest.raises(ValueError, match="'negative' or 'positive'"):
        queries.extreme_items(TOY, "neutral")


# --- trends ------------------------------------------------------------------------------------------------


def test_trend_filters_keys_and_long_form_drops_empty_buckets():
    table = queries.trend(TOY, by="topic", bucket="15min", keys=["Energy"])
    assert set(table["key"]) == {"Energy"}
    assert list(table["volume"]) == [2, 0, 0, 0, 0, 0]  # 09:00 .. 10:15; a2 is a copy of a
    long = queries.trend_chart(table, "share_negative")
    assert list(long.columns) == ["bucket_start", "key", "value"]
    assert len(long) == 1 and long["value"].iloc[0] == 0.5  # empty buckets have no share
    assert len(queries.trend_chart(table, "volume")) == 6  # volume keeps its zeros
    with pytest.raises(ValueError, match="unknown trend metric"):
        queries.trend_chart(table, "median")


def test_trend_smoothing_pools_counts_over_trailing_buckets():
    table = queries.trend(TOY, by="all", bucket="hour", smooth=2).set_index("bucket_start")
    first, second = table.index
    assert table.loc[first, "share_negative"] == pytest.approx(1 / 3)  # a, b, c (a2 is a copy)
    assert table.loc[second, "share_negative"] == pytest.approx(2 / 5)  # pooled: 2 negatives of 5
    assert table.loc[second, "volume"] == 2  # volume stays per bucket
    raw = queries.trend(TOY, by="all", bucket="hour")
    assert raw["share_negative"].iloc[1] == 0.5
    with pytest.raises(ValueError, match="smooth must be >= 1"):
        queries.trend(TOY, smooth=0)


def test_auto_bucket_is_the_finest_with_enough_stories_per_point():
    start = T0 - timedelta(hours=3)  # 06:00, where a 6-hour bucket starts
    rows = [(f"i{i}", -180 + 15 * i, "negative", 0.9, "A", [], None) for i in range(4 * 24 * 7)]
    frame = scored(rows)  # 4 stories an hour for 7 days
    end = start + timedelta(days=7)
    # hourly points pooling 3 buckets hold 12 stories; 15-minute ones pooling 12 hold 12 too
    assert queries.auto_bucket(frame, by="all", start=start, end=end, smooth=3) == ("hour", 12.0)
    assert queries.auto_bucket(frame, by="all", start=start, end=end, smooth=12) == ("15min", 12.0)
    # unsmoothed, an hour holds 4: 6 hours (24) is the finest with 10; a day would also do
    assert queries.auto_bucket(frame, by="all", start=start, end=end, smooth=1) == ("6h", 24.0)
    table = queries.trend(frame, by="all", bucket="6h", start=start, end=end)
    assert len(table) == 28 and (table["volume"] == 24).all()
    # the median shown key decides: one busy topic among thin ones does not make buckets finer
    thin = scored([(f"{k}{i}", -180 + 360 * i, "neutral", 0.9, k, [], None) for k in "BC" for i in range(28)])
    both = pd.concat([frame, thin], ignore_index=True)
    assert queries.auto_bucket(both, start=start, end=end, smooth=3) == ("6h", 3.0)  # 1 a bucket: thin
    assert queries.auto_bucket(both, keys=["A"], start=start, end=end, smooth=3)[0] == "hour"
    # a range too short for 8 coarser points stays hourly (noisy) rather than one daily point
    day = frame.iloc[::16]  # a story every 4 hours
    assert queries.auto_bucket(day, by="all", start=start, end=start + timedelta(days=1), smooth=3) == (
        "hour",
        0.75,
    )
    assert queries.auto_bucket(frame, by="all", keys=["nothing"]) == ("hour", 0.0)
    assert queries.auto_bucket(frame.iloc[0:0]) == ("hour", 0.0)


def test_trend_of_nothing_is_an_empty_table():
    empty = queries.trend(TOY.iloc[0:0])
    assert empty.empty and "share_negative" in empty.columns
    assert queries.trend_chart(empty).empty


# --- database: status, alerts, actions ----------------------------------------------------------------------


def test_status_before_and_after_migration(tmp_path):
    engine = create_engine(f"sqlite:///{tmp_path / 'empty.db'}")
    assert queries.monitor_status(engine) == queries.MonitorStatus(ready=False)
    from core.schema import migrate

    migrate(engine)
    status = queries.monitor_status(engine)
    assert status.ready and status.items == 0 and status.newest_item is None and not status.active()
    engine.dispose()


def test_sample_database_status_and_alerts(sample_engine):
    status = queries.monitor_status(sample_engine)
    assert (status.items, status.scored, status.open_alerts) == (506, 506, 2)
    assert status.model_versions == ("truth",)
    assert status.newest_item == datetime(2026, 3, 6, 20, 50, 15, tzinfo=UTC)
    assert status.active(now=status.last_ingested + timedelta(minutes=5))
    assert not status.active(now=status.last_scored + timedelta(hours=1))
    frame = queries.alerts_frame(sample_engine)
    assert list(frame["key"]) == ["NWDE", "Energy | Oil"]  # newest incident first
    assert list(frame["status"]) == ["open", "open"]
    with session_scope(sample_engine) as session:
        linked = dict(
            session.execute(sa.select(AlertItem.alert_id, sa.func.count()).group_by(AlertItem.alert_id)).all()
        )
    assert dict(zip(frame["id"], frame["items"], strict=True)) == linked
    table = queries.alerts_table(frame)
    assert table.loc[f"#{frame['id'].iloc[1]}"].to_dict() == {
        "Status": "open",
        "Rule": "topic-negative-surge",
        "Key": "topic: Energy | Oil",
        "Value": "100%",
        "Threshold": "70%",
        "Stories": linked[frame["id"].iloc[1]],
        "Window (UTC)": "Thu 05 Mar 13:00–16:00",
    }
    with pytest.raises(ValueError, match="unknown alert status"):
        queries.alerts_frame(sample_engine, status="closed")


def test_drilldown_lists_the_alert_items_with_their_labels(sample_engine):
    frame = queries.alerts_frame(sample_engine)
    energy = int(frame.loc[frame["key"] == "Energy | Oil", "id"].iloc[0])
    items = queries.alert_drilldown(sample_engine, energy)
    truth = truth_labels()
    assert len(items) == int(frame.loc[frame["id"] == energy, "items"].iloc[0])
    assert set(items["topic"]) == {"Energy | Oil"}
    assert all(items["sentiment"] == [truth[i]["sentiment"] for i in items["item_id"]])
    assert (items["sentiment"] == "negative").mean() > 0.8
    window = (datetime(2026, 3, 5, 13, tzinfo=UTC), datetime(2026, 3, 5, 16, tzinfo=UTC))
    assert items["timestamp"].between(*window, inclusive="left").all()
    assert items["copies"].max() > 1  # the blast stories were syndicated
    with pytest.raises(ValueError, match="no alert with id 999"):
        queries.alert_drilldown(sample_engine, 999)


def test_alert_context_and_windows(sample_engine):
    frame = queries.alerts_frame(sample_engine).set_index("key")
    energy = int(frame.loc["Energy | Oil", "id"])
    context = queries.alert_context(sample_engine, energy)
    assert list(context.columns) == ["value", "baseline", "threshold"]
    assert set(context["threshold"]) == {0.7}
    assert context["value"].max() == pytest.approx(frame.loc["Energy | Oil", "value"])
    assert context.index.min() == pd.Timestamp("2026-03-04 13:00", tz="UTC")
    assert not math.isnan(context.loc[pd.Timestamp("2026-03-05 13:00", tz="UTC"), "baseline"])
    windows = queries.alert_windows(sample_engine, "topic", ["Energy | Oil", "Earnings"])
    assert list(windows["id"]) == [energy]
    start = datetime(2026, 3, 6, tzinfo=UTC)
    assert queries.alert_windows(sample_engine, "topic", start=start).empty
    assert list(queries.alert_windows(sample_engine, "entity")["key"]) == ["NWDE"]


def test_dashboard_queries_on_each_database(db):
    """The same queries on SQLite and PostgreSQL (window functions, JSON tickers, aware timestamps)."""
    assert fill_sample_db(db) == 2
    status = queries.monitor_status(db)
    assert (status.items, status.scored, status.open_alerts) == (506, 506, 2)
    start, end = queries.resolve_range("Last 7 days", status.newest_item, status.oldest_item)
    frame = queries.load_scored(db, start, end)
    assert len(frame) == 506 and frame["timestamp"].dt.tz is not None
    assert queries.key_options(frame, "entity", limit=1) == ["NWDE"]
    assert queries.topic_breakdown(frame)["stories"].sum() == frame["group_id"].nunique()
    alerts = queries.alerts_frame(db)
    first = int(alerts["id"].iloc[0])
    assert len(queries.alert_drilldown(db, first)) == alerts["items"].iloc[0]
    alerts_module.acknowledge(db, first, by="dana")
    assert queries.alerts_frame(db, status="acknowledged")["id"].tolist() == [first]


def test_rescoring_keeps_history_and_each_version_can_be_shown(sample_engine):
    assert queries.model_versions(sample_engine) == ["truth"]
    n = rescore_energy_as_neutral(sample_engine)
    assert queries.model_versions(sample_engine) == ["v2", "truth"]  # most recently used first
    latest = queries.load_scored(sample_engine)
    energy = latest[latest["topic"] == "Energy | Oil"]
    assert (
        len(energy) == n
        and set(energy["model_version"]) == {"v2"}
        and set(energy["sentiment"]) == {"neutral"}
    )
    assert len(latest) == 506  # the other items keep their only (truth) score
    old = queries.load_scored(sample_engine, model_version="truth")
    assert len(old) == 506 and (old.loc[old["topic"] == "Energy | Oil", "sentiment"] == "negative").sum() > 30
    assert len(queries.load_scored(sample_engine, model_version="v2")) == n
    assert queries.model_versions(create_engine("sqlite://")) == []
