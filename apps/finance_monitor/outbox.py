"""The alert outbox: deliveries committed with their alerts, sent later, retried, dead-lettered.

Delivery guarantees:

* **Nothing lost.** :func:`enqueue` adds one ``finance_deliveries`` row per (alert, sink) in the
  transaction that stores the alert, so an alert that exists will be delivered, whenever the
  process dies.
* **Off the scoring path.** :class:`Sender` works the outbox separately: after the cycle in
  ``--once``, in a :class:`DeliveryWorker` thread in ``--follow``. A slow or hanging receiver
  costs at most its timeout per attempt, and only the sender waits.
* **Retries.** A failed attempt is retried after ``backoff_s * 2**(attempts-1)`` seconds (at
  most ``max_backoff_s``); after ``max_attempts`` attempts, or at once when the receiver refuses
  for good (4xx, a redirect, a forbidden address), the delivery is *dead*: shown on the
  dashboard and by ``aigc finance deliveries``, and sent again only when someone retries it.
* **Once.** A sender claims a delivery (a short lease in ``next_attempt_at``) before sending it,
  so two senders never send it at the same time; every attempt carries the same idempotency
  key. A process killed after the receiver accepted an alert but before ``delivered`` was
  committed sends it again on restart (at least once); the key lets the receiver drop that repeat.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from apps.finance_monitor.sinks import AlertSink, DeliveryError
from apps.finance_monitor.storage import Delivery
from core.failpoints import failpoint
from core.storage import StorageError, session_scope, utcnow

logger = logging.getLogger(__name__)

DELIVERY_STATUSES: tuple[str, ...] = ("pending", "delivered", "dead")


@dataclass(frozen=True)
class DeliveryPolicy:
    """Retry settings of the outbox (``webhook_*`` settings of ``monitor:``)."""

    max_attempts: int = field(default=8, metadata={"help": "Attempts before a delivery is dead."})
    backoff_s: float = field(default=2.0, metadata={"help": "Wait after the first failed attempt."})
    max_backoff_s: float = field(default=600.0, metadata={"help": "Longest wait between attempts."})
    lease_s: float = field(
        default=60.0, metadata={"help": "A delivery being sent is left alone this long by other senders."}
    )

    def __post_init__(self) -> None:
        if self.max_attempts < 1 or self.backoff_s < 0 or self.max_backoff_s < self.backoff_s:
            raise ValueError(
                "delivery policy: max_attempts must be >= 1 and 0 <= backoff_s <= max_backoff_s, got "
                f"{self.max_attempts}, {self.backoff_s}, {self.max_backoff_s}"
            )
        if self.lease_s <= 0:
            raise ValueError(f"delivery policy: lease_s must be positive, got {self.lease_s}")

    def delay(self, attempts: int) -> timedelta:
        """The wait after the ``attempts``-th failed attempt (exponential, capped)."""
        return timedelta(seconds=min(self.backoff_s * 2 ** max(attempts - 1, 0), self.max_backoff_s))


def enqueue(
    session: Session, alert_id: int, payload: Mapping[str, Any], sinks: Sequence[AlertSink], now: datetime
) -> list[Delivery]:
    """Add a pending delivery of ``payload`` to each sink (in the caller's transaction).

    The idempotency key is ``alert-<id>-<sink>-<random>``: stable across retries, and unique even
    if a database is recreated and alert ids start again at 1.
    """
    rows = [
        Delivery(
            alert_id=alert_id,
            sink=sink.name,
            idempotency_key=_key(alert_id, sink.name),
            target=sink.target,
            payload=dict(payload),
            status="pending",
            attempts=0,
            next_attempt_at=now,
            created_at=now,
            updated_at=now,
        )  # fmt: skip
        for sink in sinks
    ]
    session.add_all(rows)
    return rows


def _key(alert_id: int, sink: str) -> str:
    return f"alert-{alert_id}-{sink}-{uuid.uuid4().hex}"


@dataclass
class SendReport:
    """What one pass of the sender did (delivery ids)."""

    sent: list[int] = field(default_factory=list)
    retrying: list[int] = field(default_factory=list)
    dead: list[int] = field(default_factory=list)


class Sender:
    """Sends the due deliveries of the outbox to their sinks.

    Args:
        engine: A migrated database.
        sinks: The configured sinks, matched to deliveries by name. A delivery for a sink no longer
            configured fails its attempts (and ends dead) rather than vanishing.
        policy: Retries and backoff.
        clock: Current time (aware UTC; injected by tests).
    """

    def __init__(
        self,
        engine: Engine,
        sinks: Sequence[AlertSink],
        policy: DeliveryPolicy = DeliveryPolicy(),
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.engine = engine
        self.sinks = {sink.name: sink for sink in sinks}
        self.policy = policy
        self.clock = clock

    def deliver_due(self, stop: threading.Event | None = None) -> SendReport:
        """Attempt every delivery that is due, oldest first, until none is left or ``stop`` is set.

        After a retryable failure the rest of that sink's deliveries wait for the next pass (a
        receiver that is down costs one timeout per pass, not one per alert).
        """
        report, skipped, tried = SendReport(), set(), set()
        while stop is None or not stop.is_set():
            delivery = self._next_due(skipped, tried)
            if delivery is None:
                break
            tried.add(delivery.id)
            failpoint("monitor.before_delivery")
            if not self._claim(delivery.id):
                continue  # another sender took it
            outcome = self._attempt(delivery)
            getattr(report, outcome).append(delivery.id)
            if outcome == "retrying":
                skipped.add(delivery.sink)
        if report.sent or report.retrying or report.dead:
            logger.info(
                "Delivery pass",
                extra={"sent": len(report.sent), "retrying": len(report.retrying), "dead": len(report.dead)},
            )
        return report

    def _next_due(self, skipped: set[str], tried: set[int]) -> Delivery | None:
        stmt = (
            sa.select(Delivery)
            .where(Delivery.status == "pending", Delivery.next_attempt_at <= self.clock())
            .order_by(Delivery.next_attempt_at, Delivery.id)
        )
        if skipped:
            stmt = stmt.where(Delivery.sink.not_in(skipped))
        if tried:
            stmt = stmt.where(Delivery.id.not_in(tried))
        with session_scope(self.engine) as session:
            return session.scalars(stmt.limit(1)).first()

    def _claim(self, delivery_id: int) -> bool:
        now = self.clock()
        with session_scope(self.engine) as session:
            claimed = session.execute(
                sa.update(Delivery)
                .where(
                    Delivery.id == delivery_id,
                    Delivery.status == "pending",
                    Delivery.next_attempt_at <= now,
                )
                .values(next_attempt_at=now + timedelta(seconds=self.policy.lease_s), updated_at=now)
            )
            return claimed.rowcount == 1

    def _attempt(self, delivery: Delivery) -> str:
        sink = self.sinks.get(delivery.sink)
        error: DeliveryError | None = None
        if sink is None:
            error = DeliveryError(f"sink {delivery.sink!r} is not configured", retryable=True)
        else:
            try:
                sink.send(delivery.payload, delivery.idempotency_key)
            except DeliveryError as err:
                error = err
            except Exception as err:  # noqa: BLE001 - a sink bug must not stop the other deliveries
                error = DeliveryError(f"{delivery.target}: {type(err).__name__}", retryable=True)
        now = self.clock()
        attempts = delivery.attempts + 1
        if error is None:
            values: dict[str, Any] = {"status": "delivered", "delivered_at": now, "last_error": None}
            outcome = "sent"
        elif not error.retryable or attempts >= self.policy.max_attempts:
            values = {"status": "dead", "last_error": str(error)}
            outcome = "dead"
        else:
            values = {"next_attempt_at": now + self.policy.delay(attempts), "last_error": str(error)}
            outcome = "retrying"
        with session_scope(self.engine) as session:
            session.execute(
                sa.update(Delivery)
                .where(Delivery.id == delivery.id)
                .values(attempts=attempts, updated_at=now, **values)
            )
        log = logger.info if outcome == "sent" else logger.warning
        log(
            "Alert delivery %s",
            outcome,
            extra={
                "delivery_id": delivery.id, "alert_id": delivery.alert_id, "sink": delivery.sink,
                "target": delivery.target, "attempts": attempts, "error": values.get("last_error"),
            },
        )  # fmt: skip
        return outcome


class DeliveryWorker(threading.Thread):
    """Runs :meth:`Sender.deliver_due` in the background until :meth:`stop` (``--follow``).

    Args:
        sender: The sender.
        poll_s: Longest wait between passes; :meth:`wake` starts a pass at once.
    """

    def __init__(self, sender: Sender, poll_s: float = 1.0) -> None:
        super().__init__(name="finance-alert-sender", daemon=True)
        self.sender = sender
        self.poll_s = poll_s
        self._stop_event = threading.Event()
        self._wake = threading.Event()

    def wake(self) -> None:
        """Start a pass now (new deliveries were committed)."""
        self._wake.set()

    def stop(self) -> None:
        """End after the attempt in progress."""
        self._stop_event.set()
        self._wake.set()

    def run(self) -> None:
        """Pass after pass; a database error is logged and retried on the next pass."""
        while not self._stop_event.is_set():
            try:
                self.sender.deliver_due(stop=self._stop_event)
            except (StorageError, SQLAlchemyError) as err:
                logger.error("Delivery pass failed; retrying", extra={"error": str(err)})
            self._wake.wait(self.poll_s)
            self._wake.clear()


# --- queries and actions for the dashboard and the CLI ----------------------------------------------


def list_deliveries(
    engine: Engine, statuses: Sequence[str] | None = None, limit: int | None = 200
) -> list[Delivery]:
    """Deliveries, newest first, optionally only some statuses.

    Raises:
        ValueError: Unknown status.
    """
    unknown = sorted(set(statuses or ()) - set(DELIVERY_STATUSES))
    if unknown:
        raise ValueError(f"unknown delivery status {unknown}; expected some of {list(DELIVERY_STATUSES)}")
    stmt = sa.select(Delivery).order_by(Delivery.id.desc())
    if statuses:
        stmt = stmt.where(Delivery.status.in_(list(statuses)))
    if limit is not None:
        stmt = stmt.limit(limit)
    with session_scope(engine) as session:
        return list(session.scalars(stmt))


def delivery_counts(engine: Engine) -> dict[str, int]:
    """``{status: count}`` over every status (zeros included)."""
    with session_scope(engine) as session:
        rows = session.execute(sa.select(Delivery.status, sa.func.count()).group_by(Delivery.status))
        found = {status: int(n) for status, n in rows}
    return {status: found.get(status, 0) for status in DELIVERY_STATUSES}


def retry(
    engine: Engine, ids: Sequence[int] = (), *, all_dead: bool = False, now: datetime | None = None
) -> int:
    """Send dead or waiting deliveries again at the next pass, with a fresh set of attempts.

    Args:
        engine: A migrated database.
        ids: These deliveries (dead or pending; delivered ones are left alone).
        all_dead: Every dead delivery.
        now: When they become due (default: now).

    Returns:
        The number of deliveries requeued.

    Raises:
        ValueError: An id that is not in the outbox, or one that was already delivered.
    """
    now = now or utcnow()
    with session_scope(engine) as session:
        if ids:
            found = {d.id: d.status for d in session.scalars(sa.select(Delivery).where(Delivery.id.in_(ids)))}
            missing = sorted(set(ids) - set(found))
            if missing:
                raise ValueError(f"no delivery with id {missing[0]}")
            done = sorted(i for i, status in found.items() if status == "delivered")
            if done:
                raise ValueError(f"delivery {done[0]} was already delivered; it is not sent twice")
        condition = Delivery.status == "dead" if all_dead else Delivery.id.in_(list(ids))
        result = session.execute(
            sa.update(Delivery)
            .where(condition, Delivery.status != "delivered")
            .values(status="pending", attempts=0, next_attempt_at=now, updated_at=now)
        )
        count = int(result.rowcount or 0)
    logger.info("Deliveries requeued", extra={"count": count})
    return count
