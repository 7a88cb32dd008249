"""Where alerts go besides the database: the log, and webhooks (:class:`core.webhooks.WebhookSink`).

A sink makes one attempt per call; retries, backoff and dead letters belong to the outbox
(:mod:`apps.finance_monitor.outbox` over :mod:`core.outbox`). Every attempt carries the delivery's
idempotency key (the ``Idempotency-Key`` header), the same on every retry, so a receiver can drop
a repeat.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from core.webhooks import Sink

logger = logging.getLogger(__name__)

#: Receives the JSON payload of each new alert (:func:`apps.finance_monitor.alerts.alert_payload`).
AlertSink = Sink


class LogSink:
    """Writes each alert to the log at WARNING level (``apps.finance_monitor.sinks``)."""

    name = "log"
    target = "log"

    def send(self, payload: Mapping[str, Any], idempotency_key: str = "") -> None:
        """Log the alert message with its id, rule and key as fields."""
        logger.warning(
            "ALERT %s",
            payload.get("message"),
            extra={k: payload.get(k) for k in ("id", "rule", "key", "value", "threshold")},
        )


__all__ = ["AlertSink", "LogSink"]
