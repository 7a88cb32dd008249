"""Request size limit (an ASGI middleware) and per-key rate limits (a token bucket per API key).

Both answer with the API's JSON error body: 413 for a body over the limit (checked on the declared
``Content-Length``, or on the bytes received for a chunked upload, which is read in full first),
429 with ``Retry-After`` for a key that spends its budget. Buckets live in the process: with several
replicas (Ray Serve) each replica limits on its own, so a key's budget is per replica.
"""

from __future__ import annotations

import json
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from core.api.errors import ApiError

Scope = dict[str, Any]
Receive = Callable[[], Any]
Send = Callable[[dict[str, Any]], Any]


class BodySizeLimit:
    """ASGI middleware refusing request bodies over ``max_bytes`` with 413.

    Args:
        app: The wrapped ASGI app.
        max_bytes: Largest accepted body.
    """

    def __init__(self, app: Any, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None:
            try:
                too_big = int(declared) > self.max_bytes
            except ValueError:
                await _send_error(send, 400, "Content-Length is not a number", "header.content-length")
                return
            if too_big:
                await _send_error(send, 413, self._message(), "body")
                return
            await self.app(scope, receive, send)  # the server never reads past Content-Length
            return
        # No declared length (chunked upload): read it all first, at most max_bytes, then replay it.
        messages: list[dict[str, Any]] = []
        received = 0
        while True:
            message = await receive()
            messages.append(message)
            if message["type"] != "http.request":
                break
            received += len(message.get("body", b""))
            if received > self.max_bytes:
                await _send_error(send, 413, self._message(), "body")
                return
            if not message.get("more_body", False):
                break

        async def replay() -> dict[str, Any]:
            return messages.pop(0) if messages else await receive()

        await self.app(scope, replay, send)

    def _message(self) -> str:
        return f"request body larger than {self.max_bytes} bytes"


async def _send_error(send: Send, status: int, message: str, field: str | None) -> None:
    body = json.dumps({"error": message, "field": field}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


@dataclass
class _Bucket:
    tokens: float
    updated: float


@dataclass
class RateLimiter:
    """A token bucket per key: ``rate_per_s`` requests a second on average, bursts up to ``burst``.

    Args:
        rate_per_s: Refill rate; ``0`` turns limiting off.
        burst: Bucket size (requests allowed at once after a quiet period).
        clock: Monotonic clock (injected by tests).
    """

    rate_per_s: float
    burst: int
    clock: Callable[[], float] = time.monotonic
    _buckets: dict[str, _Bucket] = field(default_factory=dict, init=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    def check(self, key: str) -> None:
        """Spend one request of ``key``'s budget.

        Raises:
            ApiError: 429 with ``Retry-After`` when the budget is spent.
        """
        if self.rate_per_s <= 0:
            return
        now = self.clock()
        with self._lock:
            bucket = self._buckets.get(key)
            if bucket is None:
                bucket = self._buckets[key] = _Bucket(float(self.burst), now)
            bucket.tokens = min(float(self.burst), bucket.tokens + (now - bucket.updated) * self.rate_per_s)
            bucket.updated = now
            if bucket.tokens >= 1.0:
                bucket.tokens -= 1.0
                return
            wait = (1.0 - bucket.tokens) / self.rate_per_s
        raise ApiError(
            429,
            f"rate limit of {self.rate_per_s:g} requests/s (burst {self.burst}) for this key exceeded",
            headers={"Retry-After": str(max(1, math.ceil(wait)))},
        )


__all__ = ["BodySizeLimit", "RateLimiter"]
