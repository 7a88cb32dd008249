"""The alert outbox: deliveries committed with their alerts, sent later, retried, dead-lettered.

The machinery is the core's (:mod:`core.outbox`: claims, backoff, dead letters, requeue); this
module binds it to ``finance_deliveries`` (:class:`apps.finance_monitor.storage.Delivery`):

* **Nothing lost.** :func:`enqueue` adds one row per (alert, sink) in the transaction that stores
  the alert, so an alert that exists will be delivered, whenever the process dies.
* **Off the scoring path.** :class:`Sender` works the outbox separately: after the cycle in
  ``--once``, in a :class:`DeliveryWorker` thread in ``--follow``.
* **Retries, dead letters, once** — as :mod:`core.outbox` describes; every attempt of an alert
  carries the key ``alert-<id>-<sink>-<random>`` in its ``Idempotency-Key`` header.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from apps.finance_monitor.sinks import AlertSink
from apps.finance_monitor.storage import Delivery
from core import outbox
from core.outbox import DELIVERY_STATUSES, DeliveryPolicy, DeliveryWorker, SendReport, new_delivery
from core.storage import utcnow

logger = logging.getLogger(__name__)


def enqueue(
    session: Session, alert_id: int, payload: Mapping[str, Any], sinks: Sequence[AlertSink], now: datetime
) -> list[Delivery]:
    """Add a pending delivery of ``payload`` to each sink (in the caller's transaction).

    The idempotency key is ``alert-<id>-<sink>-<random>``: stable across retries, and unique even
    if a database is recreated and alert ids start again at 1.
    """
    key = f"alert-{alert_id}"
    rows = [new_delivery(Delivery, sink, key, payload, now, alert_id=alert_id) for sink in sinks]
    session.add_all(rows)
    return rows


class Sender(outbox.Sender):
    """Sends the due alert deliveries (:class:`core.outbox.Sender` over ``finance_deliveries``).

    Args:
        engine: A migrated database.
        sinks: The configured sinks, matched to deliveries by name.
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
        super().__init__(engine, Delivery, sinks, policy, clock, failpoint_name="monitor.before_delivery")


def list_deliveries(
    engine: Engine, statuses: Sequence[str] | None = None, limit: int | None = 200
) -> list[Delivery]:
    """Alert deliveries, newest first, optionally only some statuses (``ValueError`` on unknown ones)."""
    return outbox.list_deliveries(engine, Delivery, statuses, limit)


def delivery_counts(engine: Engine) -> dict[str, int]:
    """``{status: count}`` of the alert outbox over every status (zeros included)."""
    return outbox.delivery_counts(engine, Delivery)


def retry(
    engine: Engine, ids: Sequence[int] = (), *, all_dead: bool = False, now: datetime | None = None
) -> int:
    """Send dead or waiting alert deliveries again at the next pass (see :func:`core.outbox.retry`)."""
    return outbox.retry(engine, Delivery, ids, all_dead=all_dead, now=now)


__all__ = [
    "DELIVERY_STATUSES",
    "DeliveryPolicy",
    "DeliveryWorker",
    "SendReport",
    "Sender",
    "delivery_counts",
    "enqueue",
    "list_deliveries",
    "retry",
]
