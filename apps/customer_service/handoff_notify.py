"""Notifications of new hand-offs: a webhook POST per hand-off, through the core's durable outbox.

:func:`notifying_store` gives the chat page and the HTTP API a :class:`SupportStore` whose hand-offs
write one ``support_handoff_deliveries`` row per sink *in the hand-off's transaction*
(:meth:`SupportStore.add_exchange`), and a background :class:`core.outbox.DeliveryWorker` that
sends them (woken by each new hand-off, and every ``queue.poll_s`` seconds for retries). A process
killed at any point loses nothing: a committed hand-off has its delivery row, and whichever
process runs a sender next (the UI, ``aigc serve``, or ``aigc support deliveries --send``) sends
it; two senders never send one delivery at once (a claim with a lease), and every attempt carries
the same ``Idempotency-Key`` (``handoff-<id>-webhook-<random>``).

The webhook URL comes from the environment variable named by ``queue.webhook_url_env``
(``AIGC_SUPPORT_HANDOFF_WEBHOOK_URL``), never from a file; it must resolve to public addresses
unless ``queue.webhook_allow`` lists the host (:mod:`core.webhook_safety`). Only its masked form is
stored, logged or shown. The payload is :func:`apps.customer_service.handoff.notification_payload`.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy.engine import Engine

from apps.customer_service.config import QueueConfig, load_queue_config
from apps.customer_service.storage import HandoffDelivery, SupportStore
from core import outbox
from core.outbox import DeliveryPolicy, DeliveryWorker, SendReport
from core.storage import create_engine
from core.webhook_safety import AllowList
from core.webhooks import Sink, webhook_sink

logger = logging.getLogger(__name__)

ALLOW_WHERE = "configs/customer_service.yaml: queue.webhook_allow"


def build_sinks(config: QueueConfig) -> list[Sink]:
    """The webhook sink when ``$<queue.webhook_url_env>`` holds a URL, else none.

    Raises:
        ValueError: A forbidden URL (shown masked), a token variable that is not set, bad settings.
    """
    url = os.environ.get(config.webhook_url_env, "").strip() if config.webhook_url_env else ""
    if not url:
        return []
    allow = AllowList.parse(config.webhook_allow, where=ALLOW_WHERE)
    sink = webhook_sink(
        url, token_env=config.webhook_token_env, allow=allow, timeout=config.webhook_timeout_s
    )
    logger.info("Hand-off notifications on", extra={"target": sink.target})
    return [sink]


def delivery_policy(config: QueueConfig) -> DeliveryPolicy:
    """The outbox's retry policy from ``config`` (:meth:`DeliveryPolicy.for_webhooks`)."""
    return DeliveryPolicy.for_webhooks(config)


class HandoffSender(outbox.Sender):
    """Sends the due hand-off notifications (:class:`core.outbox.Sender` over the hand-off outbox)."""

    def __init__(
        self, engine: Engine, sinks: Sequence[Sink], policy: DeliveryPolicy = DeliveryPolicy()
    ) -> None:
        super().__init__(engine, HandoffDelivery, sinks, policy)


class NotifyingStore(SupportStore):
    """A :class:`SupportStore` with a background sender of its hand-off notifications (``worker``).

    Args:
        engine: An engine, a URL, or ``None`` for ``AIGC_DB_URL`` / the local SQLite file.
        sinks: Where hand-offs are announced.
        policy: Retries of the outbox.
        poll_s: Longest wait between passes of the sender (a new hand-off wakes it at once).
        start_sender: Start the sender thread now (``False``: deliveries wait for another sender).
    """

    def __init__(
        self,
        engine: Engine | str | None,
        sinks: Sequence[Sink],
        policy: DeliveryPolicy = DeliveryPolicy(),
        poll_s: float = 5.0,
        start_sender: bool = True,
    ) -> None:
        super().__init__(engine, sinks=sinks)
        self.worker: DeliveryWorker | None = None
        if sinks and start_sender:
            sender = HandoffSender(self.engine, sinks, policy)
            self.worker = DeliveryWorker(sender, poll_s, name="support-handoff-sender")
            self.worker.start()
            self.on_handoff = lambda _case_id: self.worker.wake() if self.worker else None

    def close(self, timeout_s: float = 30.0) -> None:
        """Stop the sender after the attempt in progress (what is left stays in the outbox)."""
        if self.worker is not None:
            self.worker.stop()
            self.worker.join(timeout=timeout_s)
            self.worker = None


def notifying_store(
    engine: Engine | str | None = None, config: QueueConfig | None = None, start_sender: bool = True
) -> NotifyingStore:
    """A store that queues a notification per new hand-off and (``start_sender``) sends them in a thread.

    Without a webhook configured it queues and sends nothing.

    Raises:
        ValueError: The webhook settings are wrong (see :func:`build_sinks`).
    """
    config = config or load_queue_config()
    return NotifyingStore(engine, build_sinks(config), delivery_policy(config), config.poll_s, start_sender)


def send_due(engine: Engine | str | None = None, config: QueueConfig | None = None) -> SendReport:
    """One pass over the outbox with the configured sinks (``aigc support deliveries --send``).

    Raises:
        ValueError: The webhook settings are wrong.
    """
    config = config or load_queue_config()
    engine = engine if isinstance(engine, Engine) else create_engine(engine)
    return HandoffSender(engine, build_sinks(config), delivery_policy(config)).deliver_due()


def list_deliveries(
    engine: Engine, statuses: Sequence[str] | None = None, limit: int | None = 200
) -> list[HandoffDelivery]:
    """Hand-off notifications, newest first, optionally only some statuses (``ValueError``: unknown)."""
    return outbox.list_deliveries(engine, HandoffDelivery, statuses, limit)


def delivery_counts(engine: Engine) -> dict[str, int]:
    """``{status: count}`` of the hand-off outbox over every status (zeros included)."""
    return outbox.delivery_counts(engine, HandoffDelivery)


def retry(
    engine: Engine, ids: Sequence[int] = (), *, all_dead: bool = False, now: datetime | None = None
) -> int:
    """Send dead or waiting hand-off notifications again at the next pass (see :func:`core.outbox.retry`)."""
    return outbox.retry(engine, HandoffDelivery, ids, all_dead=all_dead, now=now)


__all__ = [
    "HandoffSender",
    "NotifyingStore",
    "build_sinks",
    "delivery_counts",
    "delivery_policy",
    "list_deliveries",
    "notifying_store",
    "retry",
    "send_due",
]
