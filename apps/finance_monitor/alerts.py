"""Alerts: incidents in the database, notifications, and every action on them (acknowledge, mute, unmute).

Rules (:mod:`apps.finance_monitor.rules`) find the buckets in which a metric crosses its
threshold; this module turns those breaches into alerts in the database and sends them.

One incident raises one alert: a breach within ``cooldown`` of an existing alert of the same
rule and key extends that alert (window, peak value, linked items) instead of raising a new
one; nothing is sent again. Evaluating the same data twice changes nothing. A new alert gets one
delivery per sink (the log, a webhook, and each channel of its rule: Slack, Teams, e-mail, see
:mod:`apps.finance_monitor.channels`) in the outbox, committed with it
(:mod:`apps.finance_monitor.outbox` sends them), unless its rule and key are muted; muted alerts
are still stored (status ``muted``). With a :class:`~apps.finance_monitor.digests.Digester`, every
alert created or extended gets its digest in the same transaction, and the delivery carries it
(bounded: :meth:`~apps.finance_monitor.digests.Digest.compact`); a digest that fails to compute is
logged and left for :func:`~apps.finance_monitor.digests.get_digest` to compute on demand, never
holding the alert back. The current time comes from an injected clock, so tests never sleep.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from apps.finance_monitor.alert_text import MAX_STORIES
from apps.finance_monitor.digests import Digest, Digester, compute_digest, stored_digest
from apps.finance_monitor.outbox import enqueue
from apps.finance_monitor.rules import AlertRule, Breach, find_breaches
from apps.finance_monitor.sinks import AlertSink
from apps.finance_monitor.storage import Alert, AlertItem, Item
from core.storage import session_scope, upsert, utcnow

logger = logging.getLogger(__name__)

# --- incidents in the database -------------------------------------------------------------------


class AlertEngine:
    """Turns breaches into alerts (one per incident) and queues each new alert for its sinks.

    Args:
        engine: A migrated database engine.
        rules: The alert rules.
        sinks: Where every new alert is sent besides the database (log, webhook): a delivery per sink
            goes into the outbox in the alert's transaction; :class:`apps.finance_monitor.outbox.Sender`
            sends it.
        clock: Current time (aware UTC), used for mutes and timestamps.
        channel_sinks: The sinks of the rules' channels by channel name
            (:func:`apps.finance_monitor.channels.build_channel_sinks`): a rule's alerts also get a
            delivery per channel of the rule.
        digester: Computes each new or extended alert's digest in its transaction; ``None``: no
            digests at alert time (they are computed on demand).

    Raises:
        ValueError: A rule's channel without a sink in ``channel_sinks``.
    """

    def __init__(
        self,
        engine: Engine,
        rules: Sequence[AlertRule],
        sinks: Sequence[AlertSink] = (),
        clock: Callable[[], datetime] = utcnow,
        channel_sinks: Mapping[str, AlertSink] | None = None,
        digester: Digester | None = None,
    ) -> None:
        self.engine = engine
        self.rules = list(rules)
        self.sinks = list(sinks)
        self.clock = clock
        self.digester = digester
        self.channel_sinks = dict(channel_sinks or {})
        missing = sorted({c.name for r in self.rules for c in r.channels} - set(self.channel_sinks))
        if missing:
            raise ValueError(f"alert channels without a sink: {missing} (see channels.build_channel_sinks)")

    def sinks_for(self, rule: AlertRule) -> list[AlertSink]:
        """The sinks a new alert of ``rule`` is queued for: the shared ones, then the rule's channels."""
        return [*self.sinks, *(self.channel_sinks[c.name] for c in rule.channels)]

    def history(self) -> timedelta:
        """How much item history before the evaluated period the rules need."""
        return max((r.history() for r in self.rules), default=timedelta(0))

    def evaluate(
        self, scored: pd.DataFrame, *, since: datetime | None = None, session: Session | None = None
    ) -> list[Alert]:
        """Apply every rule to ``scored``; store, extend or skip alerts; queue new ones for delivery.

        Args:
            scored: Scored items (see :func:`apps.finance_monitor.storage.scored_frame`).
            since: Only buckets ending after this time (history before it feeds the baselines).
            session: Work in this transaction (the caller commits, e.g. with its watermark);
                default a transaction of its own.

        Returns:
            The alerts created by this call (extended ones are not included).
        """
        if session is None:
            with session_scope(self.engine) as own:
                return self.evaluate(scored, since=since, session=own)
        created: list[Alert] = []
        touched: dict[int, tuple[Alert, AlertRule]] = {}  # created or extended, for their digests
        for rule in self.rules:
            for breach in find_breaches(rule, scored, since=since):
                alert, new = self._apply(session, rule, breach)
                touched[alert.id] = (alert, rule)
                if new:
                    created.append(alert)
        versions = scored["model_version"].unique() if "model_version" in scored.columns else []
        version = str(versions[0]) if len(versions) == 1 else None
        digests = {
            alert_id: self._digest(session, alert, rule, version)
            for alert_id, (alert, rule) in touched.items()
        }
        for alert in created:
            if alert.status != "muted":
                # Every item linked by the end of this evaluation (an incident may have grown since its
                # first bucket), the same ones its digest describes.
                digest = digests.get(alert.id)
                compact = (
                    digest.compact(self.digester.config.payload_clusters)
                    if digest and self.digester
                    else None
                )
                item_ids = _linked(session, alert.id)
                stories = top_stories(session, scored, item_ids, touched[alert.id][1].metric)
                payload = alert_payload(alert, item_ids, stories, compact)
                enqueue(session, alert.id, payload, self.sinks_for(touched[alert.id][1]), alert.created_at)
        return created

    def _digest(self, session: Session, alert: Alert, rule: AlertRule, version: str | None) -> Digest | None:
        """The alert's digest, stored in ``session``; ``None`` without a digester or when it failed."""
        if self.digester is None:
            return None
        stored = stored_digest(session, alert.id)
        if stored is not None and stored[1]:  # its items have not changed: nothing new to say
            return stored[0]
        try:  # a model that fails must not hold the alert back (the digest writes only once it is built)
            return compute_digest(session, alert, self.digester, rule.baseline_buckets, version)
        except (OSError, RuntimeError, ValueError) as err:
            logger.error(
                "Alert digest failed; it is computed on demand later",
                extra={"alert_id": alert.id, "error": f"{type(err).__name__}: {err}"},
            )
            return None

    def _apply(self, session: Session, rule: AlertRule, breach: Breach) -> tuple[Alert, bool]:
        now = self.clock()
        incident = session.scalars(
            sa.select(Alert)
            .where(
                Alert.rule == rule.name,
                Alert.key == breach.key,
                Alert.window_start <= breach.bucket_end + rule.cooldown,
                Alert.window_end >= breach.bucket_start - rule.cooldown,
            )
            .order_by(Alert.window_end.desc())
            .limit(1)
        ).first()
        if incident is not None:
            _extend(incident, breach, now)
            _link(session, incident.id, breach.item_ids)
            return incident, False
        alert = Alert(
            rule=rule.name, scope=rule.scope, key=breach.key, metric=rule.metric, window=rule.window,
            window_start=breach.bucket_start, window_end=breach.bucket_end, created_at=now, updated_at=now,
            baseline_buckets=int(rule.baseline_buckets),
            status="muted" if _muted(session, rule.name, breach.key, now) else "open",
            deliveries={}, message="",
        )  # fmt: skip
        _set_peak(alert, breach)
        session.add(alert)
        session.flush()  # assigns alert.id
        _link(session, alert.id, breach.item_ids)
        logger.info("Alert raised", extra={"alert_id": alert.id, "rule": rule.name, "key": breach.key})
        return alert, True


def _set_peak(alert: Alert, breach: Breach) -> None:
    alert.value = breach.value
    alert.threshold = breach.threshold
    alert.reason = breach.reason
    alert.baseline_mean = breach.baseline_mean
    alert.baseline_std = breach.baseline_std
    alert.volume = breach.volume
    alert.message = describe(alert)


def _extend(alert: Alert, breach: Breach, now: datetime) -> None:
    alert.window_start = min(alert.window_start, breach.bucket_start)
    alert.window_end = max(alert.window_end, breach.bucket_end)
    if breach.value > alert.value:
        _set_peak(alert, breach)
    else:
        alert.message = describe(alert)
    alert.updated_at = now


def _link(session: Session, alert_id: int, item_ids: Sequence[str]) -> None:
    rows = [{"alert_id": alert_id, "item_id": item_id} for item_id in dict.fromkeys(item_ids)]
    if rows:
        upsert(session, AlertItem, rows, key_columns=["alert_id", "item_id"], update_columns=[])


def _linked(session: Session, alert_id: int) -> list[str]:
    """The ids of the items linked to an alert, oldest first."""
    stmt = (
        sa.select(AlertItem.item_id)
        .join(Item, Item.id == AlertItem.item_id)
        .where(AlertItem.alert_id == alert_id)
        .order_by(Item.timestamp, Item.id)
    )
    return list(session.scalars(stmt))


def _muted(session: Session, rule: str, key: str, now: datetime) -> bool:
    stmt = sa.select(Alert.id).where(Alert.rule == rule, Alert.key == key, Alert.muted_until > now)
    return session.scalars(stmt.limit(1)).first() is not None


def describe(alert: Alert) -> str:
    """A one-line summary of an alert for people."""
    pct = alert.metric != "volume"

    def fmt(x: float | None) -> str:
        return "n/a" if x is None else (f"{x:.0%}" if pct else f"{x:.1f}")

    base = (
        f"baseline {fmt(alert.baseline_mean)} ± {fmt(alert.baseline_std)}, "
        if alert.baseline_mean is not None
        else ""
    )
    return (
        f"{alert.rule}: {alert.metric.replace('_', ' ')} {fmt(alert.value)} for {alert.scope} {alert.key!r} "
        f"({base}threshold {fmt(alert.threshold)}, {alert.volume} items) in {alert.window} buckets "
        f"{alert.window_start:%Y-%m-%d %H:%M}–{alert.window_end:%Y-%m-%d %H:%M} UTC"
    )


def top_stories(
    session: Session, scored: pd.DataFrame, item_ids: Sequence[str], metric: str, limit: int = MAX_STORIES
) -> list[dict[str, Any]]:
    """The stories that best show an alert, for its message: one per near-duplicate group.

    Stories of the alert's sentiment (negative for ``share_negative``, positive for
    ``share_positive``) come first, the most confident first; then the rest, newest first.

    Returns:
        Up to ``limit`` ``{"id", "timestamp", "source", "title", "sentiment", "url"}`` mappings.
    """
    needed = {"item_id", "timestamp", "sentiment", "sentiment_confidence"}
    if scored.empty or not needed <= set(scored.columns):
        return []
    rows = scored[scored["item_id"].isin(list(item_ids))]
    rows = rows.sort_values("timestamp", ascending=False, kind="stable")
    if "group_id" in rows.columns:
        rows = rows.drop_duplicates("group_id")
    wanted = rows["sentiment"] == {"share_negative": "negative", "share_positive": "positive"}.get(metric)
    ranked = rows.assign(_wanted=wanted, _confidence=rows["sentiment_confidence"].where(wanted, 0.0))
    chosen = ranked.sort_values(["_wanted", "_confidence"], ascending=False, kind="stable").head(limit)
    sentiments = dict(zip(chosen["item_id"].astype(str), chosen["sentiment"], strict=True))
    items = {i.id: i for i in session.scalars(sa.select(Item).where(Item.id.in_(list(sentiments))))}
    return [
        {
            "id": item_id,
            "timestamp": items[item_id].timestamp.isoformat(),
            "source": items[item_id].source,
            "title": items[item_id].title,
            "sentiment": sentiment,
            "url": items[item_id].url,
        }
        for item_id, sentiment in sentiments.items()
        if item_id in items
    ]


def alert_payload(
    alert: Alert,
    item_ids: Sequence[str],
    stories: Sequence[Mapping[str, Any]] = (),
    digest: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The JSON document sent to sinks for an alert.

    Args:
        alert: The alert.
        item_ids: The items behind it.
        stories: The stories that best show it (:func:`top_stories`).
        digest: Its digest as sent (:meth:`apps.finance_monitor.digests.Digest.compact`: bounded).
    """
    payload = {
        "id": alert.id,
        "rule": alert.rule,
        "scope": alert.scope,
        "key": alert.key,
        "metric": alert.metric,
        "value": alert.value,
        "threshold": alert.threshold,
        "reason": alert.reason,
        "baseline_mean": alert.baseline_mean,
        "baseline_std": alert.baseline_std,
        "volume": alert.volume,
        "window": alert.window,
        "window_start": alert.window_start.isoformat(),
        "window_end": alert.window_end.isoformat(),
        "status": alert.status,
        "created_at": alert.created_at.isoformat(),
        "message": alert.message,
        "item_ids": list(item_ids),
        "stories": [dict(story) for story in stories],
    }
    if digest is not None:
        payload["digest"] = dict(digest)
    return payload


# --- actions (dashboard, API) --------------------------------------------------------------------


def list_alerts(engine: Engine, *, status: str | None = None, limit: int | None = 200) -> list[Alert]:
    """Alerts, newest incident first, optionally only one status (open/acknowledged/muted)."""
    stmt = sa.select(Alert).order_by(Alert.window_start.desc(), Alert.id.desc())
    if status is not None:
        stmt = stmt.where(Alert.status == status)
    if limit is not None:
        stmt = stmt.limit(limit)
    with session_scope(engine) as session:
        return list(session.scalars(stmt))


def alert_items(engine: Engine, alert_id: int) -> list[Item]:
    """The items behind an alert, oldest first."""
    stmt = (
        sa.select(Item)
        .join(AlertItem, AlertItem.item_id == Item.id)
        .where(AlertItem.alert_id == alert_id)
        .order_by(Item.timestamp, Item.id)
    )
    with session_scope(engine) as session:
        return list(session.scalars(stmt))


def acknowledge(
    engine: Engine, alert_id: int, *, by: str | None = None, now: datetime | None = None
) -> Alert:
    """Mark an alert acknowledged (by whom, when); a blank ``by`` is recorded as anonymous.

    Raises:
        ValueError: No alert with this id.
    """
    with session_scope(engine) as session:
        alert = _get(session, alert_id)
        alert.status = "acknowledged"
        alert.acknowledged_at = now or utcnow()
        alert.acknowledged_by = (by or "").strip() or None
        return alert


def mute(engine: Engine, alert_id: int, until: datetime) -> Alert:
    """Mute an alert's rule and key until ``until``: new incidents are stored as ``muted`` and not sent.

    Raises:
        ValueError: No alert with this id.
    """
    with session_scope(engine) as session:
        alert = _get(session, alert_id)
        alert.status = "muted"
        alert.muted_until = until
        return alert


def mute_for(engine: Engine, alert_id: int, hours: float, now: datetime | None = None) -> datetime:
    """Mute an alert's rule and key for ``hours`` (see :func:`mute`).

    Returns:
        When the mute ends.

    Raises:
        ValueError: ``hours`` not positive, or no such alert.
    """
    if hours <= 0:
        raise ValueError(f"mute duration must be positive, got {hours} hours")
    until = (now or utcnow()) + timedelta(hours=hours)
    mute(engine, alert_id, until)
    return until


def unmute(engine: Engine, alert_id: int) -> None:
    """End the mute of an alert's rule and key now; the alert goes back to ``open`` (or ``acknowledged``).

    Raises:
        ValueError: No alert with this id.
    """
    with session_scope(engine) as session:
        alert = _get(session, alert_id)
        session.execute(
            sa.update(Alert)
            .where(Alert.rule == alert.rule, Alert.key == alert.key, Alert.muted_until.is_not(None))
            .values(muted_until=None)
        )
        alert.status = "acknowledged" if alert.acknowledged_at is not None else "open"
        alert.muted_until = None


def _get(session: Session, alert_id: int) -> Alert:
    alert = session.get(Alert, alert_id)
    if alert is None:
        raise ValueError(f"no alert with id {alert_id}")
    return alert
