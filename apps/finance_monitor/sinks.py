"""Where alerts go besides the database: the log and webhooks (one HTTP POST of JSON per attempt).

A sink makes one attempt per call; retries, backoff and dead letters belong to the outbox
(:mod:`apps.finance_monitor.outbox`). Every attempt carries the delivery's idempotency key (the
``Idempotency-Key`` header), the same on every retry, so a receiver can drop a repeat.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, Protocol

import requests

from apps.finance_monitor.webhook_safety import (
    AllowList,
    Resolver,
    UnsafeWebhookURL,
    check_webhook_url,
    checked_session,
    mask_url,
    resolve,
)

logger = logging.getLogger(__name__)

#: Statuses worth another attempt besides 5xx (timeouts, rate limits).
RETRY_STATUSES = frozenset({408, 425, 429})
IDEMPOTENCY_HEADER = "Idempotency-Key"
_MAX_BODY = 200  # characters of a refusing receiver's answer kept in the error


class DeliveryError(RuntimeError):
    """One attempt failed; ``retryable`` says whether another attempt may succeed.

    The message never contains a secret (URLs are masked).
    """

    def __init__(self, message: str, *, retryable: bool) -> None:
        super().__init__(message)
        self.retryable = retryable


class AlertSink(Protocol):
    """Receives the JSON payload of each new alert (:func:`apps.finance_monitor.alerts.alert_payload`)."""

    name: str
    #: Where it sends, for people: masked, never a secret.
    target: str

    def send(self, payload: Mapping[str, Any], idempotency_key: str) -> None:
        """Deliver one alert (one attempt).

        Raises:
            DeliveryError: The attempt failed.
        """
        ...


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


class WebhookSink:
    """POSTs an alert as JSON to a URL: one attempt, no redirects, a timeout, the URL re-checked first.

    A 2xx answer delivers. Connection errors, timeouts, 5xx and the statuses in
    :data:`RETRY_STATUSES` are retryable; a redirect (3xx, never followed), another 4xx or a URL
    that now resolves to a forbidden address is not.

    Args:
        url: The endpoint (``http://`` or ``https://``); it may hold a token, and is only ever
            shown masked.
        allow: Hosts and networks exempt from the public-address rule.
        timeout: Seconds to connect, and seconds to wait for each read of the answer.
        headers: Extra request headers (e.g. an ``Authorization`` read from an environment variable).
        name: Name of the sink in the outbox.
        resolver: Looks up the host before each attempt (tests inject answers; the address then
            connected to is checked as well).

    Raises:
        UnsafeWebhookURL: Bad scheme or a literal non-public address (checked without DNS here).
    """

    def __init__(
        self,
        url: str,
        *,
        allow: AllowList = AllowList(),
        timeout: float = 5.0,
        headers: Mapping[str, str] | None = None,
        name: str = "webhook",
        resolver: Resolver = resolve,
    ) -> None:
        check_webhook_url(url, allow, resolver=None)
        if timeout <= 0:
            raise ValueError(f"webhook timeout must be positive, got {timeout}")
        self.url = url
        self.target = mask_url(url)
        self.allow = allow
        self.timeout = timeout
        self.headers = dict(headers or {})
        self.name = name
        self.resolver = resolver
        self._session = checked_session(allow)

    def __repr__(self) -> str:
        return f"WebhookSink(name={self.name!r}, target={self.target!r})"

    def send(self, payload: Mapping[str, Any], idempotency_key: str) -> None:
        """POST ``payload`` once.

        Raises:
            DeliveryError: Refused, failed or timed out (``retryable`` says what to do next).
        """
        try:
            check_webhook_url(self.url, self.allow, resolver=self.resolver)
        except UnsafeWebhookURL as err:
            raise DeliveryError(str(err), retryable=False) from None
        except OSError as err:
            raise DeliveryError(f"{self.target}: host does not resolve ({err})", retryable=True) from None
        headers = {**self.headers, IDEMPOTENCY_HEADER: idempotency_key}
        try:
            # stream: the answer's body is read only up to _MAX_BODY bytes, so a receiver that
            # trickles a long body cannot hold the sender beyond one more read timeout.
            response = self._session.post(
                self.url,
                json=dict(payload),
                headers=headers,
                timeout=self.timeout,
                allow_redirects=False,
                stream=True,
            )
        except UnsafeWebhookURL as err:  # the address connected to (see checked_session)
            raise DeliveryError(str(err), retryable=False) from None
        except requests.Timeout:
            raise DeliveryError(f"{self.target}: timed out after {self.timeout:g}s", retryable=True) from None
        except requests.RequestException as err:
            # requests' messages repeat the URL (with its token): name the failure only.
            raise DeliveryError(f"{self.target}: {type(err).__name__}", retryable=True) from None
        with response:
            status = response.status_code
            if 200 <= status < 300:
                logger.info("Webhook delivered", extra={"target": self.target, "status": status})
                return
            body = self._start_of_body(response)
        if 300 <= status < 400:
            raise DeliveryError(f"{self.target}: HTTP {status} redirect not followed", retryable=False)
        retryable = status >= 500 or status in RETRY_STATUSES
        raise DeliveryError(f"{self.target}: HTTP {status} {body}".rstrip(), retryable=retryable)

    def _start_of_body(self, response: requests.Response) -> str:
        """The first characters of a refusal's body, on one line, without the URL."""
        try:
            raw = response.raw.read(_MAX_BODY, decode_content=True) or b""
        except Exception:  # noqa: BLE001 - the body only decorates the error message
            return ""
        text = raw.decode(response.encoding or "utf-8", errors="replace")
        return " ".join(text.replace(self.url, self.target).split())
