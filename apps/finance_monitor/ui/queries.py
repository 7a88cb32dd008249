"""Queries behind the analyst dashboard: plain functions returning DataFrames.

The Streamlit pages under ``apps/finance_monitor/ui/pages`` only lay out what these return, so
every number on screen is computed (and tested) here or in :mod:`~apps.finance_monitor.aggregate`.

Time ranges are anchored at the newest stored item rather than the wall clock, so a quiet feed
or a replayed archive (the sample stream is from March 2026) still shows its last days.
Near-duplicate copies (same ``group_id``) count once in trends and breakdowns, as in the alert
rules; item lists show one row per story with the number of copies.
"""

from __future__ import annotations

import html
import logging
import math
import re
from dataclasses import dataclass
from datetime import datetime, timedelta

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from apps.finance_monitor import outbox
from apps.finance_monitor.aggregate import BUCKETS, SENTIMENT_VALUES, aggregate, bucket_offset, scope_column
from apps.finance_monitor.alerts import list_alerts
from apps.finance_monitor.digests import Digest, Digester, baseline_lengths, get_digest, stored_digest
from apps.finance_monitor.storage import (
    Alert,
    AlertDigest,
    AlertItem,
    Delivery,
    EntityLink,
    Item,
    Score,
    entity_names,
    scored_frame,
)
from core.storage import session_scope, utcnow
from core.ui.markdown import SAFE_URL

logger = logging.getLogger(__name__)

TIME_RANGES: dict[str, timedelta | None] = {
    "Last 24 hours": timedelta(days=1),
    "Last 3 days": timedelta(days=3),
    "Last 7 days": timedelta(days=7),
    "Last 30 days": timedelta(days=30),
    "All": None,
}
TREND_METRICS: dict[str, str] = {
    "share_negative": "Negative share",
    "share_positive": "Positive share",
    "mean_sentiment": "Mean sentiment (confidence-weighted)",
    "volume": "Volume (stories)",
}
ALERT_STATUSES: tuple[str, ...] = ("open", "acknowledged", "muted")
ITEM_COLUMNS = [
    "timestamp", "source", "title", "sentiment", "sentiment_confidence", "topic",
    "topic_confidence", "tickers", "entities", "copies", "item_id",
]  # fmt: skip


@dataclass(frozen=True)
class MonitorStatus:
    """What is in the database and how fresh it is.

    Attributes:
        ready: The finance tables exist.
        items: Stored items.
        scored: Items with at least one score.
        newest_item: Publication time of the newest item.
        oldest_item: Publication time of the oldest item.
        last_ingested: When an item was last stored.
        last_scored: When an item was last scored.
        model_versions: Model versions that scored items, newest first.
        open_alerts: Alerts with status ``open``.
    """

    ready: bool
    items: int = 0
    scored: int = 0
    newest_item: datetime | None = None
    oldest_item: datetime | None = None
    last_ingested: datetime | None = None
    last_scored: datetime | None = None
    model_versions: tuple[str, ...] = ()
    open_alerts: int = 0

    def active(self, now: datetime | None = None, within: timedelta = timedelta(minutes=10)) -> bool:
        """Whether the monitor stored or scored something within ``within`` of ``now``."""
        now = now or utcnow()
        last = max((t for t in (self.last_ingested, self.last_scored) if t is not None), default=None)
        return last is not None and now - last <= within


def has_schema(engine: Engine) -> bool:
    """Whether the finance tables exist (``aigc db upgrade`` has run)."""
    return sa.inspect(engine).has_table(Score.__tablename__)


def monitor_status(engine: Engine) -> MonitorStatus:
    """Counts and freshness of the stored items, scores and alerts."""
    if not has_schema(engine):
        return MonitorStatus(ready=False)
    with session_scope(engine) as session:
        items, oldest, newest, ingested = session.execute(
            sa.select(
                sa.func.count(Item.id),
                sa.func.min(Item.timestamp),
                sa.func.max(Item.timestamp),
                sa.func.max(Item.ingested_at),
            )
        ).one()
        scored = session.scalar(sa.select(sa.func.count(sa.distinct(Score.item_id))))
        versions = session.execute(
            sa.select(Score.model_version, sa.func.max(Score.scored_at).label("last"))
            .group_by(Score.model_version)
            .order_by(sa.desc("last"))
        ).all()
        open_alerts = session.scalar(sa.select(sa.func.count(Alert.id)).where(Alert.status == "open"))
    return MonitorStatus(
        ready=True,
        items=int(items or 0),
        scored=int(scored or 0),
        newest_item=_as_utc(newest),
        oldest_item=_as_utc(oldest),
        last_ingested=_as_utc(ingested),
        last_scored=_as_utc(versions[0].last) if versions else None,
        model_versions=tuple(v.model_version for v in versions),
        open_alerts=int(open_alerts or 0),
    )


def model_versions(engine: Engine) -> list[str]:
    """Model versions that scored items, most recently used first (empty without the schema)."""
    if not has_schema(engine):
        return []
    stmt = (
        sa.select(Score.model_version)
        .group_by(Score.model_version)
        .order_by(sa.func.max(Score.scored_at).desc(), Score.model_version)
    )
    with session_scope(engine) as session:
        return list(session.scalars(stmt))


def _as_utc(value: object) -> datetime | None:
    """An aware UTC datetime (min/max keep the column type, but be safe with raw driver values)."""
    if value is None:
        return None
    stamp = pd.Timestamp(value)
    stamp = stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
    return stamp.to_pydatetime()


def resolve_range(
    choice: str, newest: datetime | None, oldest: datetime | None = None
) -> tuple[datetime | None, datetime | None]:
    """The ``[start, end)`` of a :data:`TIME_RANGES` choice, ending at the hour after the newest item.

    Args:
        choice: A :data:`TIME_RANGES` label.
        newest: Publication time of the newest item (``None``: no items, no bounds).
        oldest: Publication time of the oldest item; the start is not earlier than its hour.

    Raises:
        ValueError: Unknown choice.
    """
    if choice not in TIME_RANGES:
        raise ValueError(f"unknown time range {choice!r}; expected one of {list(TIME_RANGES)}")
    span = TIME_RANGES[choice]
    if newest is None or span is None:
        return None, None
    end = pd.Timestamp(newest).floor("h").to_pydatetime() + timedelta(hours=1)
    start = end - span
    if oldest is not None:
        start = max(start, pd.Timestamp(oldest).floor("h").to_pydatetime())
    return start, end


def load_scored(
    engine: Engine,
    start: datetime | None = None,
    end: datetime | None = None,
    model_version: str | None = None,
) -> pd.DataFrame:
    """Scored items published in ``[start, end)`` (each item's latest score unless ``model_version``)."""
    with session_scope(engine) as session:
        return scored_frame(session, start=start, end=end, model_version=model_version)


def key_options(scored: pd.DataFrame, by: str, limit: int | None = None) -> list[str]:
    """Topics / entities / sources in ``scored``, most stories first (ties by name)."""
    keys = _keyed(_stories(scored), by)["key"]
    counts = keys.value_counts()
    ordered = sorted(counts.index, key=lambda k: (-counts[k], k))
    return ordered[:limit] if limit is not None else ordered


def trend(
    scored: pd.DataFrame,
    *,
    by: str = "topic",
    bucket: str = "hour",
    keys: list[str] | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
    smooth: int = 1,
) -> pd.DataFrame:
    """Per key and bucket: volume, shares, mean sentiment and baselines (see :func:`aggregate`).

    Args:
        scored: Scored items (:func:`load_scored`).
        by: ``topic``, ``entity``, ``source`` or ``all``.
        bucket: ``5min``, ``15min``, ``hour``, ``6h`` or ``day``.
        keys: Only these keys; default all.
        start: First bucket holds this time (empty leading buckets are kept).
        end: Last bucket holds the instant before this time.
        smooth: Pool the shares and the mean sentiment over this many trailing buckets (1: off).
            Shares are pooled exactly (sum of counts over sum of volumes); the mean sentiment is
            the volume-weighted mean of the bucket means. ``volume`` stays per bucket.

    Raises:
        ValueError: ``smooth`` < 1, or a bad ``by`` / ``bucket``.
    """
    if smooth < 1:
        raise ValueError(f"smooth must be >= 1 bucket, got {smooth}")
    if scored.empty:
        return aggregate(scored.assign(sentiment=pd.Series(dtype=str)), by=by, bucket=bucket)
    table = aggregate(scored, by=by, bucket=bucket, start=start, end=end)
    if keys:
        table = table[table["key"].isin(keys)].reset_index(drop=True)
    if smooth > 1 and not table.empty:
        table = _pool(table, smooth)
    return table


AUTO_BUCKETS: tuple[str, ...] = tuple(BUCKETS)  # the aggregation's bucket sizes, finest first
AUTO_MIN_STORIES = 10
"""Stories a typical shown key needs per plotted point (bucket x smoothing) for :func:`auto_bucket`:
a share of 10 stories moves in steps of 10 points; of 1 or 2 it jumps between 0 and 100 %."""
AUTO_MIN_POINTS = 8
"""Buckets the shown range must span for :func:`auto_bucket` to pick that size (a line needs points)."""


def auto_bucket(
    scored: pd.DataFrame,
    *,
    by: str = "topic",
    keys: list[str] | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
    smooth: int = 1,
    min_stories: int = AUTO_MIN_STORIES,
    min_points: int = AUTO_MIN_POINTS,
) -> tuple[str, float]:
    """The finest bucket whose points hold enough stories to read a share from.

    A point pools ``smooth`` buckets. The rule asks the median shown key (``keys``, default all) for
    ``min_stories`` stories per point at its average rate over ``[start, end)`` (the items' own span
    when unbounded), trying :data:`AUTO_BUCKETS` finest first, but never a bucket so coarse that the
    range holds fewer than ``min_points`` of them (a thin day of news is then shown by the hour,
    noisy, rather than as one point).

    Returns:
        ``(bucket, stories per point of the median key)``; ``("hour", 0.0)`` without items.
    """
    if scored.empty:
        return "hour", 0.0
    times = pd.to_datetime(scored["timestamp"], utc=True)
    first = pd.Timestamp(start) if start is not None else times.min()
    last = pd.Timestamp(end) if end is not None else times.max()
    inside = scored[(times >= first) & (times < last) if end is not None else times >= first]
    totals = _keyed(_stories(inside), by)["key"].value_counts()  # stories per key, copies once
    if keys:
        totals = totals[totals.index.isin(keys)]
    if totals.empty:
        return "hour", 0.0
    span = max(last - first, pd.Timedelta(minutes=1))
    typical = float(totals.median())
    counts = {b: max(1, math.ceil(span / bucket_offset(b))) for b in AUTO_BUCKETS}
    allowed = [b for b in AUTO_BUCKETS if counts[b] >= min_points] or [AUTO_BUCKETS[0]]
    per_point = {b: typical / counts[b] * min(smooth, counts[b]) for b in allowed}
    bucket = next((b for b in allowed if per_point[b] >= min_stories), allowed[-1])
    return bucket, per_point[bucket]


def _pool(table: pd.DataFrame, window: int) -> pd.DataFrame:
    table = table.copy()

    def rolled(column: pd.Series) -> pd.Series:
        by_key = column.groupby(table["key"], sort=False)
        return by_key.rolling(window, min_periods=1).sum().reset_index(level=0, drop=True)

    volume = rolled(table["volume"]).where(lambda v: v > 0)
    table["share_negative"] = rolled(table["negative"]) / volume
    table["share_positive"] = rolled(table["positive"]) / volume
    weighted = rolled((table["mean_sentiment"] * table["volume"]).fillna(0.0))
    table["mean_sentiment"] = weighted / volume
    return table


def trend_chart(table: pd.DataFrame, metric: str = "share_negative") -> pd.DataFrame:
    """``table`` (from :func:`trend`) in long form for a chart: ``bucket_start``, ``key``, ``value``.

    Buckets without a value (no items: shares and mean are undefined) are left out, so lines join
    the buckets that have items; volume keeps its zeros.

    Raises:
        ValueError: Unknown metric.
    """
    if metric not in TREND_METRICS:
        raise ValueError(f"unknown trend metric {metric!r}; expected one of {list(TREND_METRICS)}")
    if table.empty:
        return pd.DataFrame(
            {"bucket_start": pd.Series(dtype="datetime64[ns, UTC]"), "key": [], "value": []}
        ).astype({"key": str, "value": float})
    out = table[["bucket_start", "key", metric]].rename(columns={metric: "value"})
    out = out.dropna(subset=["value"]).astype({"value": float, "key": str})
    return out.reset_index(drop=True)


def topic_breakdown(scored: pd.DataFrame, by: str = "topic") -> pd.DataFrame:
    """One row per key (most stories first): stories, sentiment counts and shares, mean sentiment.

    ``mean_sentiment`` is confidence-weighted as in the trend; ``mean_confidence`` is the mean
    sentiment confidence (how sure the model is about this key's items).
    """
    columns = [
        "key", "stories", "negative", "neutral", "positive", "share_negative", "share_positive",
        "mean_sentiment", "mean_confidence",
    ]  # fmt: skip
    df = _keyed(_stories(scored), by)
    if df.empty:
        return pd.DataFrame(columns=columns)
    df["value"] = df["sentiment"].map(SENTIMENT_VALUES).astype(float)
    df["weight"] = pd.to_numeric(df["sentiment_confidence"]).fillna(1.0).astype(float)
    df["weighted"] = df["value"] * df["weight"]
    grouped = df.groupby("key")
    out = pd.DataFrame({"stories": grouped.size()})
    for label in ("negative", "neutral", "positive"):
        out[label] = grouped["sentiment"].apply(lambda s, lab=label: int((s == lab).sum()))
    out["share_negative"] = out["negative"] / out["stories"]
    out["share_positive"] = out["positive"] / out["stories"]
    weight = grouped["weight"].sum()
    out["mean_sentiment"] = grouped["weighted"].sum() / weight.where(weight > 0)
    out["mean_confidence"] = grouped["weight"].mean()
    out = out.reset_index().sort_values(["stories", "key"], ascending=[False, True], kind="stable")
    return out[columns].reset_index(drop=True)


def latest_items(
    scored: pd.DataFrame,
    *,
    limit: int = 50,
    topics: list[str] | None = None,
    sentiments: list[str] | None = None,
    search: str | None = None,
) -> pd.DataFrame:
    """Newest stories first (one row per near-duplicate group, with its number of ``copies``).

    Args:
        scored: Scored items.
        limit: Most rows.
        topics: Only these topics.
        sentiments: Only these sentiment labels.
        search: Only titles containing this text (case-insensitive).
    """
    df = _filter(_collapse(scored), topics, sentiments, search)
    df = df.sort_values(["timestamp", "item_id"], ascending=[False, True], kind="stable")
    return df.head(limit)[ITEM_COLUMNS].reset_index(drop=True)


def extreme_items(
    scored: pd.DataFrame, sentiment: str = "negative", *, limit: int = 10, topics: list[str] | None = None
) -> pd.DataFrame:
    """The stories labelled ``sentiment`` the model is surest about (then newest first).

    Raises:
        ValueError: ``sentiment`` is not ``negative`` or ``positive``.
    """
    if sentiment not in ("negative", "positive"):
        raise ValueError(f"sentiment must be 'negative' or 'positive', got {sentiment!r}")
    df = _filter(_collapse(scored), topics, [sentiment], None)
    df = df.sort_values(
        ["sentiment_confidence", "timestamp", "item_id"], ascending=[False, False, True], kind="stable"
    )
    return df.head(limit)[ITEM_COLUMNS].reset_index(drop=True)


# --- entities --------------------------------------------------------------------------------------

ENTITY_COLUMNS = [
    "entity", "name", "stories", "negative", "neutral", "positive", "net_sentiment", "mean_sentiment",
    "share_negative", "last_seen",
]  # fmt: skip


def company_names(engine: Engine) -> dict[str, str]:
    """``ticker -> company name`` recorded with the entity links (empty before any watch-list linking)."""
    if not sa.inspect(engine).has_table(EntityLink.__tablename__):
        return {}
    with session_scope(engine) as session:
        return entity_names(session)


def entity_table(scored: pd.DataFrame, names: dict[str, str] | None = None) -> pd.DataFrame:
    """One row per entity (most stories first): stories, sentiment counts, net and mean sentiment.

    ``net_sentiment`` is ``(positive - negative) / stories`` (from -1, all negative, to +1);
    ``mean_sentiment`` is confidence-weighted as in the trend. Syndicated copies count once.

    Args:
        scored: Scored items (:func:`load_scored`) with ``entities`` (or ``tickers``).
        names: Company name per ticker (:func:`company_names`); missing names are empty.
    """
    table = topic_breakdown(scored, by="entity")
    if table.empty:
        return pd.DataFrame(columns=ENTITY_COLUMNS)
    last = _keyed(_stories(scored), "entity").groupby("key")["timestamp"].max()
    table = table.rename(columns={"key": "entity"})
    table["name"] = table["entity"].map(names or {}).fillna("")
    table["net_sentiment"] = (table["positive"] - table["negative"]) / table["stories"]
    table["last_seen"] = table["entity"].map(last)
    return table[ENTITY_COLUMNS].reset_index(drop=True)


def entity_items(scored: pd.DataFrame, entity: str, *, limit: int = 200) -> pd.DataFrame:
    """The stories linked to ``entity``, newest first (one row per near-duplicate group, with ``copies``)."""
    df = _collapse(scored)
    if df.empty:
        return df.reindex(columns=ITEM_COLUMNS)
    column = scope_column(df, "entity")
    df = df[df[column].map(lambda values: entity in (values if isinstance(values, list | tuple) else []))]
    df = df.sort_values(["timestamp", "item_id"], ascending=[False, True], kind="stable")
    return df.head(limit)[ITEM_COLUMNS].reset_index(drop=True)


# --- alerts ----------------------------------------------------------------------------------------

ALERT_COLUMNS = [
    "id", "status", "rule", "scope", "key", "metric", "value", "threshold", "reason", "volume",
    "window", "window_start", "window_end", "items", "message", "created_at", "acknowledged_by",
    "muted_until", "deliveries",
]  # fmt: skip


def alerts_frame(engine: Engine, status: str | None = None, limit: int | None = 200) -> pd.DataFrame:
    """Alerts, newest incident first, with the number of linked items.

    Args:
        engine: A migrated engine.
        status: ``open``, ``acknowledged`` or ``muted``; default all.
        limit: Most rows.

    Raises:
        ValueError: Unknown status.
    """
    if status is not None and status not in ALERT_STATUSES:
        raise ValueError(f"unknown alert status {status!r}; expected one of {list(ALERT_STATUSES)}")
    rows = list_alerts(engine, status=status, limit=limit)
    counts: dict[int, int] = {}
    if rows:
        with session_scope(engine) as session:
            counted = session.execute(
                sa.select(AlertItem.alert_id, sa.func.count())
                .where(AlertItem.alert_id.in_([a.id for a in rows]))
                .group_by(AlertItem.alert_id)
            )
            counts = {alert_id: int(n) for alert_id, n in counted}
    delivered = _delivery_states(engine, [a.id for a in rows])
    records = [
        {**{c: getattr(a, c) for c in ALERT_COLUMNS if c not in ("items", "deliveries")},
         "items": counts.get(a.id, 0), "deliveries": delivered.get(a.id) or _deliveries(a.deliveries)}
        for a in rows
    ]  # fmt: skip
    frame = pd.DataFrame(records, columns=ALERT_COLUMNS)
    for column in ("window_start", "window_end", "created_at", "muted_until"):
        frame[column] = pd.to_datetime(frame[column], utc=True)
    return frame


def alert_windows(
    engine: Engine,
    scope: str,
    keys: list[str] | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
) -> pd.DataFrame:
    """Windows of alerts on ``scope`` (and ``keys``) that overlap ``[start, end)``, to shade on a trend.

    Returns:
        ``id``, ``key``, ``rule``, ``status``, ``window_start``, ``window_end``, oldest first.
    """
    stmt = sa.select(
        Alert.id, Alert.key, Alert.rule, Alert.status, Alert.window_start, Alert.window_end
    ).where(Alert.scope == scope)
    if keys:
        stmt = stmt.where(Alert.key.in_(keys))
    if start is not None:
        stmt = stmt.where(Alert.window_end > start)
    if end is not None:
        stmt = stmt.where(Alert.window_start < end)
    with session_scope(engine) as session:
        rows = session.execute(stmt.order_by(Alert.window_start, Alert.id)).all()
    columns = ["id", "key", "rule", "status", "window_start", "window_end"]
    frame = pd.DataFrame([tuple(r) for r in rows], columns=columns)
    for column in ("window_start", "window_end"):
        frame[column] = pd.to_datetime(frame[column], utc=True)
    return frame


def _delivery_states(engine: Engine, alert_ids: list[int]) -> dict[int, str]:
    """``alert id -> "log: delivered, webhook: pending (2 attempts)"`` from the outbox."""
    if not alert_ids or not _has_outbox(engine):
        return {}
    with session_scope(engine) as session:
        rows = session.execute(
            sa.select(Delivery.alert_id, Delivery.sink, Delivery.status, Delivery.attempts)
            .where(Delivery.alert_id.in_(alert_ids))
            .order_by(Delivery.sink)
        ).all()
    states: dict[int, list[str]] = {}
    for alert_id, sink, status, attempts in rows:
        tried = f" ({attempts} attempts)" if status != "delivered" and attempts else ""
        states.setdefault(alert_id, []).append(f"{sink}: {status}{tried}")
    return {alert_id: ", ".join(parts) for alert_id, parts in states.items()}


def _deliveries(deliveries: dict | None) -> str:
    """The pre-outbox ``deliveries`` column of old alerts."""
    return ", ".join(f"{sink}: {state}" for sink, state in sorted((deliveries or {}).items())) or "db only"


def alert_drilldown(engine: Engine, alert_id: int) -> pd.DataFrame:
    """The items behind an alert, oldest first, with each item's latest labels.

    Raises:
        ValueError: No alert with this id.
    """
    with session_scope(engine) as session:
        alert = session.get(Alert, alert_id)
        if alert is None:
            raise ValueError(f"no alert with id {alert_id}")
        ids = list(session.scalars(sa.select(AlertItem.item_id).where(AlertItem.alert_id == alert_id)))
        # Copies of a story lie within the dedup window (48 h by default) of the alert's items.
        margin = timedelta(days=3)
        scored = scored_frame(session, start=alert.window_start - margin, end=alert.window_end + margin)
    frame = scored[scored["item_id"].isin(ids)]
    if len(frame) < len(ids):
        missing = sorted(set(ids) - set(frame["item_id"]))
        logger.warning("Alert items without scores", extra={"alert_id": alert_id, "items": missing[:10]})
    copies = scored.groupby("group_id")["item_id"].transform("size")
    frame = frame.assign(copies=copies.loc[frame.index])
    frame = frame.sort_values(["timestamp", "item_id"], kind="stable")
    return frame[ITEM_COLUMNS].reset_index(drop=True)


# --- delivery outbox -------------------------------------------------------------------------------

DELIVERY_COLUMNS = [
    "id", "alert_id", "sink", "target", "status", "attempts", "next_attempt_at", "last_error",
    "created_at", "delivered_at",
]  # fmt: skip


def delivery_counts(engine: Engine) -> dict[str, int]:
    """``{"pending": n, "delivered": n, "dead": n}`` (zeros without the schema)."""
    if not _has_outbox(engine):
        return dict.fromkeys(outbox.DELIVERY_STATUSES, 0)
    return outbox.delivery_counts(engine)


def _has_outbox(engine: Engine) -> bool:
    """Whether the outbox exists (a database not yet upgraded to finance_0002 has alerts but no outbox)."""
    return sa.inspect(engine).has_table(Delivery.__tablename__)


def deliveries_frame(
    engine: Engine, statuses: list[str] | None = None, limit: int | None = 200
) -> pd.DataFrame:
    """Outbox rows, newest first: default those needing attention (pending and dead).

    Targets are masked (:func:`core.webhook_safety.mask_url`); so are errors.

    Raises:
        ValueError: Unknown status.
    """
    rows = outbox.list_deliveries(engine, statuses or ["pending", "dead"], limit=limit)
    records = [{c: getattr(d, c) for c in DELIVERY_COLUMNS} for d in rows]
    frame = pd.DataFrame(records, columns=DELIVERY_COLUMNS)
    for column in ("next_attempt_at", "created_at", "delivered_at"):
        frame[column] = pd.to_datetime(frame[column], utc=True)
    return frame


# --- helpers ---------------------------------------------------------------------------------------


def _stories(scored: pd.DataFrame) -> pd.DataFrame:
    """One row per near-duplicate group: its earliest copy (as the aggregation counts it)."""
    if scored.empty or "group_id" not in scored.columns:
        return scored.copy()
    ordered = scored.sort_values(["timestamp", "item_id"], kind="stable")
    return ordered.drop_duplicates("group_id", keep="first")


def _collapse(scored: pd.DataFrame) -> pd.DataFrame:
    """:func:`_stories` with a ``copies`` column (items in the group within ``scored``)."""
    if "entities" not in scored.columns and "tickers" in scored.columns:
        scored = scored.assign(entities=scored["tickers"])  # a frame from before entity linking
    if scored.empty:
        return scored.assign(copies=pd.Series(dtype=int)).reindex(columns=[*scored.columns, "copies"])
    copies = scored.groupby("group_id")["item_id"].size()
    stories = _stories(scored)
    return stories.assign(copies=stories["group_id"].map(copies).astype(int))


def _keyed(df: pd.DataFrame, by: str) -> pd.DataFrame:
    if df.empty:
        return df.assign(key=pd.Series(dtype=str))
    if by == "all":
        return df.assign(key="all")
    if by == "entity":
        column = scope_column(df, by)
        exploded = df.explode(column)
        exploded = exploded[exploded[column].notna() & (exploded[column].astype(str) != "")]
        return exploded.assign(key=exploded[column].astype(str))
    column = {"topic": "topic", "source": "source"}.get(by)
    if column is None:
        raise ValueError(f"unknown key {by!r}; expected topic, entity, source or all")
    kept = df[df[column].notna()]
    return kept.assign(key=kept[column].astype(str))


def _filter(
    df: pd.DataFrame, topics: list[str] | None, sentiments: list[str] | None, search: str | None
) -> pd.DataFrame:
    if topics:
        df = df[df["topic"].isin(topics)]
    if sentiments:
        df = df[df["sentiment"].isin(sentiments)]
    if search and search.strip():
        df = df[df["title"].str.contains(search.strip(), case=False, regex=False)]
    return df


# --- alert presentation ------------------------------------------------------------------------------


def alerts_table(frame: pd.DataFrame) -> pd.DataFrame:
    """:func:`alerts_frame` as short text columns for a plain table (readable without a canvas)."""
    columns = ["Alert", "Status", "Rule", "Key", "Value", "Threshold", "Stories", "Window (UTC)"]
    if frame.empty:
        return pd.DataFrame(columns=columns)
    pct = frame["metric"] != "volume"
    out = pd.DataFrame(
        {
            "Alert": "#" + frame["id"].astype(str),
            "Status": frame["status"],
            "Rule": frame["rule"],
            "Key": frame["scope"] + ": " + frame["key"],
            "Value": [_num(v, p) for v, p in zip(frame["value"], pct, strict=True)],
            "Threshold": [_num(v, p) for v, p in zip(frame["threshold"], pct, strict=True)],
            "Stories": frame["items"].astype(int),
            "Window (UTC)": [
                f"{s:%a %d %b %H:%M}–{e:%H:%M}"
                if s.date() == e.date()
                else f"{s:%a %d %b %H:%M}–{e:%a %d %b %H:%M}"
                for s, e in zip(frame["window_start"], frame["window_end"], strict=True)
            ],
        }
    )
    return out.set_index("Alert")


def _num(value: float, pct: bool) -> str:
    return f"{value:.0%}" if pct else f"{value:.1f}"


def alert_context(engine: Engine, alert_id: int, before: timedelta = timedelta(days=1)) -> pd.DataFrame:
    """The alert's metric for its key around the incident, for a chart.

    Returns:
        Indexed by bucket start: ``value`` (the metric), ``baseline`` (its rolling mean) and
        ``threshold`` (the alert's threshold, constant), from ``before`` the window to 6 buckets after.

    Raises:
        ValueError: No alert with this id.
    """
    with session_scope(engine) as session:
        alert = session.get(Alert, alert_id)
        if alert is None:
            raise ValueError(f"no alert with id {alert_id}")
        rule_window, step = alert.window, bucket_offset(alert.window)
        start, end = alert.window_start - before, alert.window_end + 6 * step
        # The baseline needs history before the shown period; 3x the span is plenty for a chart.
        scored = scored_frame(session, start=start - 3 * before, end=end)
    table = aggregate(scored, by=alert.scope, bucket=rule_window, start=start - 3 * before, end=end)
    table = table[(table["key"] == alert.key) & (table["bucket_start"] >= pd.Timestamp(start))]
    metric = alert.metric
    out = pd.DataFrame(
        {
            "value": table[metric].to_numpy(dtype=float),
            "baseline": table[f"{metric}_baseline_mean"].to_numpy(dtype=float),
            "threshold": float(alert.threshold),
        },
        index=pd.DatetimeIndex(table["bucket_start"], name="bucket_start"),
    )
    return out


# --- alert digests -------------------------------------------------------------------------------------

_MARKDOWN_SPECIALS = re.compile(r"([\\`*_{}\[\]()!|$~#+>-])")


def alert_digest(engine: Engine, alert_id: int) -> tuple[Digest, bool] | None:
    """The stored digest of an alert and whether it is current, or ``None`` (none yet, or no table)."""
    if not sa.inspect(engine).has_table(AlertDigest.__tablename__):
        return None
    with session_scope(engine) as session:
        return stored_digest(session, alert_id)


def compute_alert_digest(engine: Engine, alert_id: int, digester: Digester, rules_file: str | None) -> Digest:
    """Compute (again) and store an alert's digest, with the baseline length of its stored digest, else
    of its rule in ``rules_file`` (see :func:`apps.finance_monitor.digests.get_digest`).

    Raises:
        ValueError: No alert with this id, or a bad rules file.
    """
    from apps.finance_monitor.rules import SAMPLE_RULES, load_rules

    buckets = baseline_lengths(load_rules(rules_file or SAMPLE_RULES))
    digest = get_digest(engine, alert_id, digester, buckets, refresh=True)
    if digest is None:  # only without a digester
        raise ValueError(f"no digest for alert {alert_id}")
    return digest


def markdown_text(text: str) -> str:
    """``text`` safe inside Markdown with HTML on: tags escaped, Markdown and LaTeX (``$``) marks escaped."""
    return _MARKDOWN_SPECIALS.sub(r"\\\1", html.escape(" ".join(text.split()), quote=False))


def digest_anchor(alert_id: int, number: int) -> str:
    """The HTML id of reference ``number`` of an alert's digest on the Alerts page."""
    return f"digest-{alert_id}-ref-{number}"


def digest_summary_markdown(digest: Digest) -> str:
    """The summary with each citation ``[n]`` as a link to its reference in the list below it."""
    numbers = digest.ref_numbers()
    parts = []
    for sentence in digest.summary:
        links = "".join(
            f"[\\[{numbers[c]}\\]](#{digest_anchor(digest.alert_id, numbers[c])})"
            for c in sentence.cites
            if c in numbers
        )
        text = sentence.text.rstrip()
        stop = text[-1] if text[-1:] in (".", "!", "?") else "."
        parts.append(f"{markdown_text(text.rstrip('.!?'))} {links}{stop}")
    return " ".join(parts)


def digest_reference_lines(digest: Digest) -> list[str]:
    """One Markdown line (HTML on) per cited item: its anchor, ``[n]``, headline, source, time, sentiment
    and a link to the article when it has an http(s) URL."""
    lines = []
    for n, ref in enumerate(digest.refs, 1):
        when = pd.Timestamp(ref["timestamp"]).strftime("%Y-%m-%d %H:%M")
        url = ref.get("url") or ""
        link = f" · [open]({url})" if SAFE_URL.fullmatch(url) else ""
        anchor = f'<span id="{digest_anchor(digest.alert_id, n)}"></span>'
        lines.append(
            f"{anchor}**\\[{n}\\]** {markdown_text(ref['title'])} — {markdown_text(ref['source'])}, "
            f"{when} UTC, {ref.get('sentiment') or 'unscored'}{link}"
        )
    return lines


def digest_shares(digest: Digest) -> pd.DataFrame:
    """Negative and positive shares in the alert window and the baseline: ``period``, ``sentiment``,
    ``share``, ``stories`` (a period without stories has no rows)."""
    rows = []
    for period, window in (("alert window", digest.window), ("baseline", digest.baseline)):
        for sentiment in ("negative", "positive"):
            share = window.share_negative if sentiment == "negative" else window.share_positive
            if share is not None:
                rows.append(
                    {"period": period, "sentiment": sentiment, "share": share, "stories": window.stories}
                )
    return pd.DataFrame(rows, columns=["period", "sentiment", "share", "stories"])


def digest_clusters(digest: Digest) -> pd.DataFrame:
    """The digest's stories: ``headline``, ``items``, ``sentiment``, ``representative`` (largest first)."""
    rows = [
        {
            "headline": "(flagged by the injection screen)" if c.flagged else c.title,
            "items": len(c.item_ids),
            "sentiment": c.sentiment,
            "representative": c.representative,
        }
        for c in digest.clusters
    ]
    return pd.DataFrame(rows, columns=["headline", "items", "sentiment", "representative"])


def digest_entities(digest: Digest) -> pd.DataFrame:
    """``entity`` and ``stories`` mentioning it, most mentioned first."""
    return pd.DataFrame(digest.entities, columns=["entity", "stories"])
