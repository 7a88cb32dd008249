"""Sentiment per topic, entity or source and time bucket, with a rolling baseline.

Input is a frame of scored items (:func:`apps.finance_monitor.storage.scored_frame` makes one):
``timestamp`` (UTC), ``sentiment`` (negative / neutral / positive), and as available
``sentiment_confidence``, ``topic``, ``entities`` or else ``tickers`` (lists), ``source``,
``group_id``, ``item_id``.

For each key and bucket (``5min``, ``15min``, ``hour``, ``6h``, ``day``; buckets start on UTC
boundaries) the result has the volume, the counts and shares of negative / positive items, and
the confidence-weighted mean sentiment ``sum(c * v) / sum(c)`` with ``v`` = -1 / 0 / +1 and
``c`` the sentiment confidence. Buckets without items are present with volume 0 (shares and
mean are NaN), so a quiet period counts as quiet. Near-duplicate copies (same ``group_id``)
count once, at the earliest copy.

Baselines: for each metric, ``{metric}_baseline_mean`` and ``{metric}_baseline_std`` are the mean
and sample standard deviation (ddof=1) over the previous ``baseline_buckets`` buckets of the
same key, not counting the bucket itself; empty buckets are skipped for the shares and the mean
sentiment (they have no value) and count as 0 for the volume. A baseline needs at least
``min_baseline_buckets`` values, else it is NaN.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import datetime

import numpy as np
import pandas as pd

logger = logging.getLogger(__name__)

BUCKETS: dict[str, str] = {"5min": "5min", "15min": "15min", "hour": "h", "6h": "6h", "day": "D"}
SCOPES: tuple[str, ...] = ("topic", "entity", "source", "all")
METRICS: tuple[str, ...] = ("share_negative", "share_positive", "mean_sentiment", "volume")
SENTIMENT_VALUES: dict[str, float] = {"negative": -1.0, "neutral": 0.0, "positive": 1.0}
_SCOPE_COLUMN = {"topic": "topic", "entity": "tickers", "source": "source"}


def bucket_offset(bucket: str) -> pd.Timedelta:
    """The length of a bucket name (``"hour"`` -> 1 hour).

    Raises:
        ValueError: Unknown bucket name.
    """
    if bucket not in BUCKETS:
        raise ValueError(f"unknown bucket {bucket!r}; expected one of {list(BUCKETS)}")
    return pd.Timedelta(pd.tseries.frequencies.to_offset(BUCKETS[bucket]))


def aggregate(
    frame: pd.DataFrame,
    *,
    by: str = "topic",
    bucket: str = "hour",
    baseline_buckets: int = 24,
    min_baseline_buckets: int = 3,
    start: datetime | None = None,
    end: datetime | None = None,
    dedup_groups: bool = True,
    with_items: bool = False,
    sentiment_values: Mapping[str, float] = SENTIMENT_VALUES,
) -> pd.DataFrame:
    """Aggregate scored items per key and time bucket.

    Args:
        frame: Scored items (see the module docstring for the columns).
        by: ``"topic"``, ``"entity"`` (each linked entity of an item: its ``entities``, or its
            ``tickers`` in a frame without them), ``"source"`` or ``"all"``.
        bucket: Bucket size: ``"5min"``, ``"15min"``, ``"hour"``, ``"6h"`` (00, 06, 12, 18 UTC) or ``"day"``.
        baseline_buckets: How many previous buckets the baseline covers.
        min_baseline_buckets: Fewest values for a baseline (at least 2, for a standard deviation).
        start: Only items at or after this time; the first bucket is the one holding ``start``.
        end: Only items before this time; the last bucket is the one holding the last instant.
        dedup_groups: Count each ``group_id`` once.
        with_items: Add ``item_ids``: the ids of each bucket's items (needs ``item_id``).
        sentiment_values: Numeric value of each sentiment label for the mean.

    Returns:
        One row per key and bucket, sorted by key then ``bucket_start``, with columns ``key``,
        ``bucket_start``, ``bucket_end``, ``volume``, ``negative``, ``neutral``, ``positive``,
        the :data:`METRICS` and their ``_baseline_mean`` / ``_baseline_std``, and
        ``baseline_count`` (buckets with items in the baseline window).

    Raises:
        ValueError: Unknown ``by`` or ``bucket``, missing columns, unknown sentiment labels.
    """
    if by not in SCOPES:
        raise ValueError(f"unknown aggregation scope {by!r}; expected one of {list(SCOPES)}")
    step = bucket_offset(bucket)
    if not 2 <= min_baseline_buckets <= baseline_buckets:
        raise ValueError("baseline_buckets must be >= 1 and 2 <= min_baseline_buckets <= baseline_buckets")
    df = _prepare(frame, by, dedup_groups, with_items, sentiment_values, start, end)
    freq = BUCKETS[bucket]
    df["bucket_start"] = df["timestamp"].dt.floor(freq)
    grouped = df.groupby(["key", "bucket_start"], sort=True)
    table = grouped.agg(
        volume=("value", "size"),
        negative=("is_negative", "sum"),
        neutral=("is_neutral", "sum"),
        positive=("is_positive", "sum"),
        weight=("weight", "sum"),
        weighted=("weighted", "sum"),
    )
    if with_items:
        table["item_ids"] = grouped["item_id"].agg(list)
    first = _utc(start, "start").floor(freq) if start is not None else None
    last = (_utc(end, "end") - pd.Timedelta(1, "us")).floor(freq) if end is not None else None
    if table.empty and (first is None or last is None):
        return _empty(with_items)
    first = first if first is not None else table.index.get_level_values("bucket_start").min()
    last = last if last is not None else table.index.get_level_values("bucket_start").max()
    keys = sorted(table.index.get_level_values("key").unique())
    grid = pd.MultiIndex.from_product(
        [keys, pd.date_range(first, last, freq=freq)], names=["key", "bucket_start"]
    )
    table = table.reindex(grid)
    for column in ("volume", "negative", "neutral", "positive"):
        table[column] = table[column].fillna(0).astype(int)
    if with_items:
        table["item_ids"] = [ids if isinstance(ids, list) else [] for ids in table["item_ids"]]
    volume = table["volume"].where(table["volume"] > 0)
    table["share_negative"] = table["negative"] / volume
    table["share_positive"] = table["positive"] / volume
    table["mean_sentiment"] = (table["weighted"] / table["weight"].where(table["weight"] > 0)).where(
        volume > 0
    )
    table = table.drop(columns=["weight", "weighted"]).reset_index()
    table["bucket_end"] = table["bucket_start"] + step
    _add_baselines(table, baseline_buckets, min_baseline_buckets)
    ordered = ["key", "bucket_start", "bucket_end", "volume", "negative", "neutral", "positive"]
    rest = [c for c in table.columns if c not in ordered]
    return table[ordered + rest]


def _prepare(
    frame: pd.DataFrame,
    by: str,
    dedup_groups: bool,
    with_items: bool,
    sentiment_values: Mapping[str, float],
    start: datetime | None,
    end: datetime | None,
) -> pd.DataFrame:
    needed = ["timestamp", "sentiment"]
    if by in _SCOPE_COLUMN:
        needed.append(scope_column(frame, by))
    if with_items:
        needed.append("item_id")
    missing = [c for c in needed if c not in frame.columns]
    if missing:
        raise ValueError(f"scored items lack column(s) {missing} needed to aggregate by {by!r}")
    df = frame.copy()
    df["timestamp"] = pd.to_datetime(df["timestamp"], utc=True)
    if dedup_groups and "group_id" in df.columns:
        order = ["timestamp", "item_id"] if "item_id" in df.columns else ["timestamp"]
        df = df.sort_values(order, kind="stable").drop_duplicates("group_id", keep="first")
    if start is not None:
        df = df[df["timestamp"] >= _utc(start, "start")]
    if end is not None:
        df = df[df["timestamp"] < _utc(end, "end")]
    unknown = sorted(set(df["sentiment"].dropna()) - set(sentiment_values)) + (
        ["<missing>"] if df["sentiment"].isna().any() else []
    )
    if unknown:
        raise ValueError(f"unknown sentiment label(s) {unknown}; expected {sorted(sentiment_values)}")
    df["value"] = df["sentiment"].map(dict(sentiment_values)).astype(float)
    if "sentiment_confidence" in df.columns:
        df["weight"] = pd.to_numeric(df["sentiment_confidence"]).fillna(1.0).astype(float)
    else:
        df["weight"] = 1.0
    df["weighted"] = df["weight"] * df["value"]
    for label in ("negative", "neutral", "positive"):
        df[f"is_{label}"] = (df["sentiment"] == label).astype(int)
    if by == "all":
        df["key"] = "all"
    elif by == "entity":
        column = scope_column(df, by)
        df = df.explode(column)
        df = df[df[column].notna() & (df[column].astype(str) != "")]
        df["key"] = df[column].astype(str)
    else:
        df = df[df[_SCOPE_COLUMN[by]].notna()]
        df["key"] = df[_SCOPE_COLUMN[by]].astype(str)
    return df


def scope_column(frame: pd.DataFrame, by: str) -> str:
    """The column of the keys of scope ``by`` (``entity``: ``entities`` where present, else ``tickers``)."""
    if by == "entity" and "entities" in frame.columns:
        return "entities"
    return _SCOPE_COLUMN[by]


def _utc(when: datetime, name: str) -> pd.Timestamp:
    stamp = pd.Timestamp(when)
    if stamp.tzinfo is None:
        raise ValueError(f"{name}={when!r} is naive; pass a timezone-aware datetime (UTC)")
    return stamp.tz_convert("UTC")


def _add_baselines(table: pd.DataFrame, window: int, min_periods: int) -> None:
    """Rolling baselines over each key's previous ``window`` buckets, as arrays (one row per key).

    The table is a full key x bucket grid in key-major order (see :func:`aggregate`), so each metric
    reshapes to ``(keys, buckets)`` and every key's window is computed at once; a per-key pandas
    rolling was most of an alert evaluation's time with hundreds of tickers.
    """
    keys = int(table["key"].nunique())
    shape = (keys, len(table) // keys) if keys else (0, 0)
    for metric in METRICS:
        values = table[metric].to_numpy(dtype=float).reshape(shape)
        mean, std = rolling_previous(values, window, min_periods)
        table[f"{metric}_baseline_mean"] = mean.ravel()
        table[f"{metric}_baseline_std"] = std.ravel()
    has_items = (table["volume"].to_numpy() > 0).astype(float).reshape(shape)
    counts = _window_sums(_previous(has_items), window)[0]
    table["baseline_count"] = counts.ravel().astype(int)


def rolling_previous(values: np.ndarray, window: int, min_periods: int) -> tuple[np.ndarray, np.ndarray]:
    """Mean and sample std (ddof=1) of each row's previous ``window`` values, NaNs skipped.

    Row by row this is pandas' ``s.shift(1).rolling(window, min_periods).mean()`` / ``.std()``: a
    window with fewer than ``min_periods`` values (or fewer than 2, for the std) gives NaN.

    Args:
        values: ``(rows, positions)``; NaN marks a missing value.
        window: Previous positions per window.
        min_periods: Fewest values for a result.
    """
    previous = _previous(values)
    # Centred on each row's mean: sums of squares of long series of large values keep their precision
    # (the variance does not change with the shift).
    centre = _row_centre(previous)
    centred = previous - centre
    sums, counts = _window_sums(centred, window)
    squares = _window_sums(np.square(centred), window)[0]
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(counts >= min_periods, sums / counts + centre, np.nan)
        variance = (squares - np.square(sums) / counts) / (counts - 1)
        std = np.where(counts >= max(min_periods, 2), np.sqrt(np.clip(variance, 0.0, None)), np.nan)
    return mean, std


def _previous(values: np.ndarray) -> np.ndarray:
    """Each row shifted one position right (the first becomes NaN)."""
    out = np.full(values.shape, np.nan)
    out[:, 1:] = values[:, :-1]
    return out


def _row_centre(values: np.ndarray) -> np.ndarray:
    """Each row's mean over its non-NaN values (0 for a row without any), as a column."""
    counts = np.sum(~np.isnan(values), axis=1, keepdims=True)
    totals = np.nansum(values, axis=1, keepdims=True)
    return np.divide(totals, counts, out=np.zeros_like(totals), where=counts > 0)


def _window_sums(values: np.ndarray, window: int) -> tuple[np.ndarray, np.ndarray]:
    """Sums and counts of the non-NaN values in each trailing window of ``window`` positions."""
    present = ~np.isnan(values)
    zeros = np.zeros((values.shape[0], 1))
    total = np.concatenate([zeros, np.cumsum(np.where(present, values, 0.0), axis=1)], axis=1)
    count = np.concatenate([zeros, np.cumsum(present, axis=1)], axis=1)
    hi = np.arange(1, values.shape[1] + 1)
    lo = np.maximum(hi - window, 0)
    return total[:, hi] - total[:, lo], count[:, hi] - count[:, lo]


def _empty(with_items: bool) -> pd.DataFrame:
    columns = ["key", "bucket_start", "bucket_end", "volume", "negative", "neutral", "positive"]
    columns += [*METRICS[:3]]
    columns += [f"{m}_baseline_{s}" for m in METRICS for s in ("mean", "std")] + ["baseline_count"]
    if with_items:
        columns.append("item_ids")
    return pd.DataFrame({c: pd.Series(dtype=np.float64) for c in columns})
