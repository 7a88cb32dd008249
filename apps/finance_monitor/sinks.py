"""Where alerts go besides the database: the log and webhooks (HTTP POST of JSON, with retries)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from typing import Any, Protocol

import requests

logger = logging.getLogger(__name__)

RETRY_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})


class AlertSink(Protocol):
    """Receives the JSON payload of each new alert (:func:`apps.finance_monitor.alerts.alert_payload`)."""

    name: str

    def send(self, payload: Mapping[str, Any]) -> None:
        """Deliver one alert; raise on failure."""
        ...


class LogSink:
    """Writes each alert to the log at WARNING level (``apps.finance_monitor.sinks``)."""

    name = "log"

    def send(self, payload: Mapping[str, Any]) -> None:
        """Log the alert message with its id, rule and key as fields."""
        logger.warning(
            "ALERT %s",
            payload.get("message"),
            extra={k: payload.get(k) for k in ("id", "rule", "key", "value", "threshold")},
        )


class WebhookError(RuntimeError):
    """A webhook could not be delivered (after retries, or refused with a 4xx status)."""


class WebhookSink:
    """POSTs each alert as JSON to a URL, retrying with exponential backoff.

    Connection errors, timeouts and statuses in :data:`RETRY_STATUSES` are retried after
    ``backoff * 2**attempt`` seconds (at most ``max_backoff``); other 4xx statuses are not.

    Args:
        url: The endpoint (``http://`` or ``https://``).
        timeout: Seconds per request.
        retries: Retries after the first attempt.
        backoff: First delay in seconds.
        max_backoff: Longest delay.
        headers: Extra request headers (e.g. an auth token).
        sleep: Waits between attempts (injected by tests).
        name: Name recorded with the delivery status.
    """

    def __init__(
        self,
        url: str,
        *,
        timeout: float = 5.0,
        retries: int = 3,
        backoff: float = 0.5,
        max_backoff: float = 30.0,
        headers: Mapping[str, str] | None = None,
        sleep: Callable[[float], None] = time.sleep,
        name: str = "webhook",
    ) -> None:
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"webhook URL must start with http:// or https://, got {url!r}")
        if retries < 0:
            raise ValueError(f"retries must be >= 0, got {retries}")
        self.url = url
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.headers = dict(headers or {})
        self.sleep = sleep
        self.name = name

    def send(self, payload: Mapping[str, Any]) -> None:
        """POST ``payload``; return on a 2xx answer.

        Raises:
            WebhookError: Refused (non-retryable status) or still failing after the retries.
        """
        last = ""
        for attempt in range(self.retries + 1):
            if attempt:
                delay = min(self.backoff * 2 ** (attempt - 1), self.max_backoff)
                logger.warning(
                    "Retrying webhook", extra={"url": self.url, "attempt": attempt, "delay_s": delay}
                )
                self.sleep(delay)
            try:
                response = requests.post(
                    self.url, json=dict(payload), headers=self.headers, timeout=self.timeout
                )
            except (requests.ConnectionError, requests.Timeout) as err:
                last = f"{type(err).__name__}: {err}"
                continue
            if 200 <= response.status_code < 300:
                logger.info("Webhook delivered", extra={"url": self.url, "status": response.status_code})
                return
            last = f"HTTP {response.status_code}: {response.text[:200]}"
            if response.status_code not in RETRY_STATUSES:
                raise WebhookError(f"webhook {self.url} refused the alert ({last})")
        raise WebhookError(f"webhook {self.url} failed after {self.retries + 1} attempts ({last})")
