"""Aggregation on toy cases computed by hand."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from apps.finance_monitor.aggregate import aggregate, bucket_offset, rolling_previous

T0 = datetime(2026, 3, 2, 9, tzinfo=UTC)


def frame(rows: list[tuple]) -> pd.DataFrame:
    """rows: (item_id, minutes after T0, sentiment, confidence, topic, tickers, source, group_id)."""
    return pd.DataFrame(
        [
            {
                "item_id": item_id,
                "timestamp": T0 + timedelta(minutes=minutes),
                "sentiment": sentiment,
                "sentiment_confidence": confidence,
                "topic": topic,
                "tickers": tickers,
                "source": source,
                "group_id": group or item_id,
            }
            for item_id, minutes, sentiment, confidence, topic, tickers, source, group in rows
        ]
    )


def test_one_bucket_counts_shares_and_weighted_mean():
    df = frame(
        [
            ("a", 5, "negative", 0.8, "Energy", ["NWE"], "W", None),
            ("b", 20, "positive", 0.5, "Energy", [], "W", None),
            ("c", 59, "neutral", 1.0, "Energy", ["NWE", "QRT"], "Q", None),
            ("d", 61, "negative", 0.9, "Energy", [], "Q", None),  # next hour
        ]
    )
    out = aggregate(df, by="topic", bucket="hour", with_items=True)
    first = out.iloc[0]
    assert (first["key"], first["bucket_start"], first["bucket_end"]) == (
        "Energy",
        T0,
        T0 + timedelta(hours=1),
    )
    assert (first["volume"], first["negative"], first["neutral"], first["positive"]) == (3, 1, 1, 1)
    assert first["share_negative"] == pytest.approx(1 / 3)
    assert first["share_positive"] == pytest.approx(1 / 3)
    assert first["mean_sentiment"] == pytest.approx((-0.8 + 0.5 + 0.0) / (0.8 + 0.5 + 1.0))
    assert first["item_ids"] == ["a", "b", "c"]
    assert out.iloc[1]["share_negative"] == 1.0 and out.iloc[1]["mean_sentiment"] == -1.0


def test_entity_source_and_all_scopes():
    df = frame(
        [
            ("a", 5, "negative", 1.0, "Energy", ["NWE"], "W", None),
            ("b", 20, "positive", 1.0, "Tech", [], "W", None),
            ("c", 30, "neutral", 1.0, "Tech", ["NWE", "QRT"], "Q", None),
        ]
    )
    entity = aggregate(df, by="entity").set_index("key")
    assert entity.loc["NWE", "volume"] == 2 and entity.loc["QRT", "volume"] == 1
    assert entity.loc["NWE", "share_negative"] == 0.5
    source = aggregate(df, by="source").set_index("key")
    assert source["volume"].to_dict() == {"Q": 1, "W": 2}
    everything = aggregate(df, by="all")
    assert everything["key"].tolist() == ["all"] and everything["volume"].tolist() == [3]


def test_empty_buckets_are_filled_and_baseline_uses_previous_buckets_only():
    # Hourly negative shares of one topic: h0 0/2, h1 1/2, h2 2/2, h3 empty, h4 3/3.
    rows = [
        ("a0", 0, "positive", 1.0, "Energy", [], "W", None),
        ("a1", 10, "neutral", 1.0, "Energy", [], "W", None),
        ("b0", 60, "negative", 1.0, "Energy", [], "W", None),
        ("b1", 70, "positive", 1.0, "Energy", [], "W", None),
        ("c0", 120, "negative", 1.0, "Energy", [], "W", None),
        ("c1", 130, "negative", 1.0, "Energy", [], "W", None),
        ("e0", 240, "negative", 1.0, "Energy", [], "W", None),
        ("e1", 250, "negative", 1.0, "Energy", [], "W", None),
        ("e2", 260, "negative", 1.0, "Energy", [], "W", None),
    ]
    out = aggregate(frame(rows), bucket="hour", baseline_buckets=3, min_baseline_buckets=2)
    assert out["volume"].tolist() == [2, 2, 2, 0, 3]
    shares = out["share_negative"].tolist()
    assert shares[:3] == [0.0, 0.5, 1.0] and math.isnan(shares[3]) and shares[4] == 1.0
    means = out["share_negative_baseline_mean"].tolist()
    stds = out["share_negative_baseline_std"].tolist()
    assert math.isnan(means[0]) and math.isnan(means[1])  # fewer than 2 previous values
    assert means[2] == pytest.approx(0.25) and stds[2] == pytest.approx(0.3535534)  # [0, .5]
    assert means[3] == pytest.approx(0.5) and stds[3] == pytest.approx(0.5)  # [0, .5, 1]
    assert means[4] == pytest.approx(0.75) and stds[4] == pytest.approx(0.3535534)  # [.5, 1, empty]
    # Volume counts the empty hour as 0: previous three volumes at h4 are [2, 2, 0].
    assert out["volume_baseline_mean"].iloc[4] == pytest.approx(4 / 3)
    assert out["baseline_count"].tolist() == [0, 1, 2, 3, 2]


def test_syndicated_copies_count_once_at_the_first_copy():
    df = frame(
        [
            ("a", 5, "negative", 1.0, "Energy", [], "W", "g1"),
            ("b", 70, "negative", 1.0, "Energy", [], "Q", "g1"),  # copy, next hour
            ("c", 75, "positive", 1.0, "Energy", [], "Q", None),
        ]
    )
    out = aggregate(df, with_items=True)
    assert out["volume"].tolist() == [1, 1]
    assert out["item_ids"].tolist() == [["a"], ["c"]]
    assert aggregate(df, dedup_groups=False)["volume"].tolist() == [1, 2]


def test_bucket_sizes_and_time_range():
    df = frame(
        [
            ("a", 1, "negative", 1.0, "Energy", [], "W", None),
            ("b", 7, "positive", 1.0, "Energy", [], "W", None),
            ("c", 60 * 26, "positive", 1.0, "Energy", [], "W", None),
        ]
    )
    five = aggregate(df, bucket="5min", start=T0, end=T0 + timedelta(minutes=15))
    assert five["bucket_start"].tolist() == [T0 + timedelta(minutes=m) for m in (0, 5, 10)]
    assert five["volume"].tolist() == [1, 1, 0]
    day = aggregate(df, bucket="day")
    assert day["bucket_start"].tolist() == [
        datetime(2026, 3, 2, tzinfo=UTC),
        datetime(2026, 3, 3, tzinfo=UTC),
    ]
    assert day["volume"].tolist() == [2, 1]
    assert bucket_offset("15min") == pd.Timedelta(minutes=15)


def test_empty_input_and_errors():
    df = frame([("a", 1, "negative", 1.0, "Energy", [], "W", None)])
    assert aggregate(df.iloc[:0]).empty
    assert aggregate(df, start=T0 + timedelta(days=1), end=T0 + timedelta(days=2)).empty
    with pytest.raises(ValueError, match="unknown bucket 'week'"):
        aggregate(df, bucket="week")
    with pytest.raises(ValueError, match="unknown aggregation scope"):
        aggregate(df, by="sector")
    with pytest.raises(ValueError, match=r"unknown sentiment label\(s\) \['bearish'\]"):
        aggregate(df.assign(sentiment="bearish"))
    with pytest.raises(ValueError, match=r"lack column\(s\) \['tickers'\]"):
        aggregate(df.drop(columns=["tickers"]), by="entity")
    with pytest.raises(ValueError, match="naive"):
        aggregate(df, start=datetime(2026, 3, 2))


def test_rolling_baselines_match_pandas_per_key_rolling():
    # The array version against the per-key pandas rolling it replaced: shares, large volumes,
    # missing values, constant series (std 0), windows longer than the series.
    rng = np.random.default_rng(0)
    for trial in range(100):
        keys, buckets = int(rng.integers(1, 5)), int(rng.integers(1, 30))
        window = int(rng.integers(2, 10))
        min_periods = int(rng.integers(2, window + 1))
        values = rng.random((keys, buckets)) * rng.choice([1.0, 1e6])
        values[rng.random((keys, buckets)) < 0.3] = np.nan
        if trial % 5 == 0:
            values[:] = 3.0
        mean, std = rolling_previous(values, window, min_periods)
        for row in range(keys):
            rolling = pd.Series(values[row]).shift(1).rolling(window, min_periods=min_periods)
            np.testing.assert_allclose(mean[row], rolling.mean(), rtol=1e-9, atol=1e-9 * np.nanmax(values))
            np.testing.assert_allclose(std[row], rolling.std(), rtol=1e-6, atol=1e-6 * np.nanmax(values))
