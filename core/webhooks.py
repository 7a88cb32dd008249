"""Sinks: where an outbox delivery goes, one attempt per call; the webhook sink POSTs JSON.

A sink makes one attempt per call; retries, backoff and dead letters belong to the outbox
(:mod:`core.outbox`). Every attempt carries the delivery's idempotency key (the
``Idempotency-Key`` header), the same on every retry, so a receiver can drop a repeat. Which
URLs a webhook may reach, and how a URL is shown without its token, is
:mod:`core.webhook_safety`.

Example:
    >>> sink = webhook_sink("https://hooks.example.com/T0/B1/secret", token_env="HOOK_TOKEN")
    >>> sink.target
    'https://hooks.example.com/T0/B1/***'
    >>> sink.send({"event": "handoff", "id": 12}, idempotency_key="handoff-12-webhook-1f3a")
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from typing import Any, Protocol

import requests

from core.webhook_safety import (
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


class Sink(Protocol):
    """Receives the JSON payload of each delivery of an outbox (:mod:`core.outbox`)."""

    name: str
    #: Where it sends, for people: masked, never a secret.
    target: str

    def send(self, payload: Mapping[str, Any], idempotency_key: str) -> None:
        """Deliver one payload (one attempt).

        Raises:
            DeliveryError: The attempt failed.
        """
        ...


class WebhookSink:
    """POSTs a payload as JSON to a URL: one attempt, no redirects, a timeout, the URL re-checked first.

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


def webhook_sink(
    url: str,
    *,
    token_env: str = "",
    allow: AllowList = AllowList(),
    timeout: float = 5.0,
    name: str = "webhook",
) -> WebhookSink:
    """A :class:`WebhookSink` from an app's settings, checked now.

    With ``token_env``, that environment variable's value is sent as ``Authorization: Bearer``.
    The URL is checked against ``allow`` with its host resolved; a name that does not resolve
    yet is only logged (every attempt checks again).

    Raises:
        ValueError: A forbidden URL (:class:`UnsafeWebhookURL`, shown masked), a token variable
            that is not set, or a non-positive timeout.
    """
    headers = {}
    if token_env:
        token = os.environ.get(token_env, "")
        if not token:
            raise ValueError(f"webhook token: environment variable {token_env} is not set")
        headers["Authorization"] = f"Bearer {token}"
    try:
        check_webhook_url(url, allow)
    except OSError as err:
        logger.warning("Webhook host does not resolve", extra={"target": mask_url(url), "error": str(err)})
    return WebhookSink(url, allow=allow, timeout=timeout, headers=headers, name=name)


__all__ = [
    "IDEMPOTENCY_HEADER",
    "RETRY_STATUSES",
    "DeliveryError",
    "Sink",
    "WebhookSink",
    "webhook_sink",
]
