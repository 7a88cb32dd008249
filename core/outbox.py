"""A durable outbox: deliveries committed with the event they announce, sent later, retried, dead-lettered.

Any app that notifies someone of an event (a finance alert, a support hand-off) keeps an outbox
table: its mapped class mixes in :class:`OutboxColumns` and adds a foreign key to the event. The
generic machinery is here:

* **Nothing lost.** The app adds one row per (event, sink) with :func:`new_delivery` in the
  transaction that stores the event, so an event that exists will be delivered, whenever the
  process dies.
* **Off the hot path.** :class:`Sender` works the outbox separately (after a cycle, or in a
  :class:`DeliveryWorker` thread). A slow or hanging receiver costs at most its timeout per
  attempt, and only the sender waits.
* **Retries.** A failed attempt is retried after ``backoff_s * 2**(attempts-1)`` seconds (at
  most ``max_backoff_s``); after ``max_attempts`` attempts, or at once when the receiver refuses
  for good (4xx, a redirect, a forbidden address), the delivery is *dead*: listed by
  :func:`list_deliveries`, and sent again only when someone calls :func:`retry`.
* **Once.** A sender claims a delivery (a short lease in ``next_attempt_at``) before sending it,
  so two senders (two processes, even) never send it at the same time; every attempt carries
  the same idempotency key. A process killed after the receiver accepted a payload but before
  ``delivered`` was committed sends it again on restart (at least once); the key lets the
  receiver drop that repeat.

Example:
    >>> class HandoffDelivery(OutboxColumns, SupportBase):
    ...     __tablename__ = "support_handoff_deliveries"
    ...     handoff_id: Mapped[int] = mapped_column(sa.ForeignKey("support_handoffs.id"))
    >>> session.add(new_delivery(HandoffDelivery, sink, f"handoff-{h.id}", payload, now, handoff_id=h.id))
    >>> Sender(engine, HandoffDelivery, [sink]).deliver_due()
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
from sqlalchemy.orm import Mapped, mapped_column

from core.failpoints import failpoint
from core.storage import StorageError, session_scope, utcnow
from core.webhooks import DeliveryError, Sink

logger = logging.getLogger(__name__)

DELIVERY_STATUSES: tuple[str, ...] = ("pending", "delivered", "dead")


class OutboxColumns:
    """The columns of an outbox table; mix into an app's declarative class (which adds the event's key)."""

    id: Mapped[int] = mapped_column(primary_key=True)
    sink: Mapped[str] = mapped_column(sa.String(64))  # the sink's name, e.g. "webhook"
    # Sent as the Idempotency-Key header: the same on every attempt, so receivers can drop repeats.
    idempotency_key: Mapped[str] = mapped_column(sa.String(128), unique=True)
    target: Mapped[str] = mapped_column(sa.String(2048), default="")  # masked: never a token
    payload: Mapped[dict[str, Any]] = mapped_column(default=dict)  # the document sent
    # pending | delivered | dead
    status: Mapped[str] = mapped_column(sa.String(16), default="pending", index=True)
    attempts: Mapped[int] = mapped_column(default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    last_error: Mapped[str | None] = mapped_column(sa.Text)  # masked
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    delivered_at: Mapped[datetime | None]


@dataclass(frozen=True)
class DeliveryPolicy:
    """Retry settings of an outbox."""

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

    @classmethod
    def for_webhooks(cls, settings: Any) -> DeliveryPolicy:
        """The policy of an app's webhook settings (``webhook_max_attempts``, ``webhook_backoff_s``,
        ``webhook_max_backoff_s``, ``webhook_timeout_s``); the lease outlasts an attempt's timeouts."""
        return cls(
            max_attempts=settings.webhook_max_attempts,
            backoff_s=settings.webhook_backoff_s,
            max_backoff_s=settings.webhook_max_backoff_s,
            lease_s=max(60.0, 4 * settings.webhook_timeout_s),
        )

    def delay(self, attempts: int) -> timedelta:
        """The wait after the ``attempts``-th failed attempt (exponential, capped)."""
        return timedelta(seconds=min(self.backoff_s * 2 ** max(attempts - 1, 0), self.max_backoff_s))


def new_delivery(
    model: type[Any], sink: Sink, key_prefix: str, payload: Mapping[str, Any], now: datetime, **event: Any
) -> Any:
    """A pending delivery of ``payload`` to ``sink`` (add it in the event's transaction).

    Args:
        model: The outbox's mapped class.
        sink: Where it goes (its name and masked target are stored).
        key_prefix: Start of the idempotency key, e.g. ``alert-12``; ``-<sink>-<random>`` is added,
            so the key is stable across retries and unique even if a database is recreated and
            event ids start again at 1.
        payload: The JSON document sent.
        now: Creation time; the delivery is due at once.
        **event: The event's key column(s), e.g. ``alert_id=12``.
    """
    return model(
        sink=sink.name,
        idempotency_key=f"{key_prefix}-{sink.name}-{uuid.uuid4().hex}",
        target=sink.target,
        payload=dict(payload),
        status="pending",
        attempts=0,
        next_attempt_at=now,
        created_at=now,
        updated_at=now,
        **event,
    )


@dataclass
class SendReport:
    """What one pass of the sender did (delivery ids)."""

    sent: list[int] = field(default_factory=list)
    retrying: list[int] = field(default_factory=list)
    dead: list[int] = field(default_factory=list)


class Sender:
    """Sends the due deliveries of one outbox to their sinks.

    Args:
        engine: A migrated database.
        model: The outbox's mapped class (mixing in :class:`OutboxColumns`).
        sinks: The configured sinks, matched to deliveries by name. A delivery for a sink no longer
            configured fails its attempts (and ends dead) rather than vanishing.
        policy: Retries and backoff.
        clock: Current time (aware UTC; injected by tests).
        failpoint_name: The fault point (:mod:`core.failpoints`) reached before each attempt.
    """

    def __init__(
        self,
        engine: Engine,
        model: type[Any],
        sinks: Sequence[Sink],
        policy: DeliveryPolicy = DeliveryPolicy(),
        clock: Callable[[], datetime] = utcnow,
        failpoint_name: str = "outbox.before_delivery",
    ) -> None:
        self.engine = engine
        self.failpoint_name = failpoint_name
        self.model = model
        self.sinks = {sink.name: sink for sink in sinks}
        self.policy = policy
        self.clock = clock

    def deliver_due(self, stop: threading.Event | None = None) -> SendReport:
        """Attempt every delivery that is due, oldest first, until none is left or ``stop`` is set.

        After a retryable failure the rest of that sink's deliveries wait for the next pass (a
        receiver that is down costs one timeout per pass, not one per event).
        """
        report, skipped, tried = SendReport(), set(), set()
        while stop is None or not stop.is_set():
            delivery = self._next_due(skipped, tried)
            if delivery is None:
                break
            tried.add(delivery.id)
            failpoint(self.failpoint_name)
            if not self._claim(delivery.id):
                continue  # another sender took it
            outcome = self._attempt(delivery)
            getattr(report, outcome).append(delivery.id)
            if outcome == "retrying":
                skipped.add(delivery.sink)
        if report.sent or report.retrying or report.dead:
            logger.info(
                "Delivery pass",
                extra={
                    "outbox": self.model.__tablename__,
                    "sent": len(report.sent),
                    "retrying": len(report.retrying),
                    "dead": len(report.dead),
                },
            )
        return report

    def _next_due(self, skipped: set[str], tried: set[int]) -> Any:
        model = self.model
        stmt = (
            sa.select(model)
            .where(model.status == "pending", model.next_attempt_at <= self.clock())
            .order_by(model.next_attempt_at, model.id)
        )
        if skipped:
            stmt = stmt.where(model.sink.not_in(skipped))
        if tried:
            stmt = stmt.where(model.id.not_in(tried))
        with session_scope(self.engine) as session:
            return session.scalars(stmt.limit(1)).first()

    def _claim(self, delivery_id: int) -> bool:
        model, now = self.model, self.clock()
        with session_scope(self.engine) as session:
            claimed = session.execute(
                sa.update(model)
                .where(model.id == delivery_id, model.status == "pending", model.next_attempt_at <= now)
                .values(next_attempt_at=now + timedelta(seconds=self.policy.lease_s), updated_at=now)
            )
            return claimed.rowcount == 1

    def _attempt(self, delivery: Any) -> str:
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
                sa.update(self.model)
                .where(self.model.id == delivery.id)
                .values(attempts=attempts, updated_at=now, **values)
            )
        log = logger.info if outcome == "sent" else logger.warning
        log(
            "Delivery %s",
            outcome,
            extra={
                "outbox": self.model.__tablename__, "delivery_id": delivery.id, "sink": delivery.sink,
                "target": delivery.target, "attempts": attempts, "error": values.get("last_error"),
            },
        )  # fmt: skip
        return outcome


class DeliveryWorker(threading.Thread):
    """Runs :meth:`Sender.deliver_due` in the background until :meth:`stop`.

    Args:
        sender: The sender.
        poll_s: Longest wait between passes; :meth:`wake` starts a pass at once.
        name: Thread name.
    """

    def __init__(self, sender: Sender, poll_s: float = 1.0, name: str = "outbox-sender") -> None:
        super().__init__(name=name, daemon=True)
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


# --- queries and actions for dashboards and commands ------------------------------------------------


def list_deliveries(
    engine: Engine, model: type[Any], statuses: Sequence[str] | None = None, limit: int | None = 200
) -> list[Any]:
    """Deliveries of the outbox ``model``, newest first, optionally only some statuses.

    Raises:
        ValueError: Unknown status.
    """
    unknown = sorted(set(statuses or ()) - set(DELIVERY_STATUSES))
    if unknown:
        raise ValueError(f"unknown delivery status {unknown}; expected some of {list(DELIVERY_STATUSES)}")
    stmt = sa.select(model).order_by(model.id.desc())
    if statuses:
        stmt = stmt.where(model.status.in_(list(statuses)))
    if limit is not None:
        stmt = stmt.limit(limit)
    with session_scope(engine) as session:
        return list(session.scalars(stmt))


def delivery_counts(engine: Engine, model: type[Any]) -> dict[str, int]:
    """``{status: count}`` over every status (zeros included)."""
    with session_scope(engine) as session:
        rows = session.execute(sa.select(model.status, sa.func.count()).group_by(model.status))
        found = {status: int(n) for status, n in rows}
    return {status: found.get(status, 0) for status in DELIVERY_STATUSES}


def retry(
    engine: Engine,
    model: type[Any],
    ids: Sequence[int] = (),
    *,
    all_dead: bool = False,
    now: datetime | None = None,
) -> int:
    """Send dead or waiting deliveries again at the next pass, with a fresh set of attempts.

    Args:
        engine: A migrated database.
        model: The outbox's mapped class.
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
            found = {d.id: d.status for d in session.scalars(sa.select(model).where(model.id.in_(ids)))}
            missing = sorted(set(ids) - set(found))
            if missing:
                raise ValueError(f"no delivery with id {missing[0]}")
            done = sorted(i for i, status in found.items() if status == "delivered")
            if done:
                raise ValueError(f"delivery {done[0]} was already delivered; it is not sent twice")
        condition = model.status == "dead" if all_dead else model.id.in_(list(ids))
        result = session.execute(
            sa.update(model)
            .where(condition, model.status != "delivered")
            .values(status="pending", attempts=0, next_attempt_at=now, updated_at=now)
        )
        count = int(result.rowcount or 0)
    logger.info("Deliveries requeued", extra={"outbox": model.__tablename__, "count": count})
    return count


__all__ = [
    "DELIVERY_STATUSES",
    "DeliveryPolicy",
    "DeliveryWorker",
    "OutboxColumns",
    "SendReport",
    "Sender",
    "delivery_counts",
    "list_deliveries",
    "new_delivery",
    "retry",
]
