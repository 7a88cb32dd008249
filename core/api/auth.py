"""API-key authentication and role checks of the HTTP API.

Keys are the suite's own (:mod:`core.auth.api_keys`: ``aigc users api-key NAME`` prints one once;
only its digest is stored) and carry their owner's role. A request sends ``Authorization: Bearer KEY``;
no key or an unknown, revoked or disabled one answers 401, a role without the endpoint's permission
403 (see :mod:`core.auth.roles`). Verified keys are trusted for ``auth_cache_s`` seconds per process so
busy clients do not cost a database round trip each; revocation takes effect within that time.

The dependencies are coroutines: a key found in that cache costs no trip through the thread pool
(only a miss asks the database, on a pool thread), and the role check is a dictionary lookup, so a
request reaches its endpoint's thread once instead of once per dependency.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool

from core.api.errors import ApiError

bearer = HTTPBearer(auto_error=False, description="An API key from `aigc users api-key NAME`.")

_UNAUTHORIZED = {"WWW-Authenticate": "Bearer"}


@dataclass(frozen=True)
class Principal:
    """Who sent a request: the key owner's name and role, and a digest naming the key (never the key)."""

    user: str
    role: str
    key_id: str


KeyVerifier = Callable[[str], Principal | None]


def core_auth_verifier(engine: Any) -> KeyVerifier:
    """A verifier over the suite's ``core_api_keys`` table on ``engine``."""
    from core.auth.api_keys import verify_api_key

    def verify(key: str) -> Principal | None:
        user = verify_api_key(key, engine=engine)
        if user is None:
            return None
        return Principal(user.name, str(getattr(user.role, "value", user.role)), key_digest(key))

    return verify


def key_digest(key: str) -> str:
    """A short digest of a key, to name it in rate limits and logs without the key itself."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()[:16]


class CachedVerifier:
    """Wraps a verifier: a key verified within ``ttl_s`` seconds is not looked up again.

    Only successes are cached (keyed by the key's SHA-256), so a new key works at once.
    """

    def __init__(
        self, verify: KeyVerifier, ttl_s: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._verify = verify
        self._ttl = ttl_s
        self._clock = clock
        self._seen: dict[str, tuple[float, Principal]] = {}
        self._lock = threading.Lock()

    def cached(self, key: str) -> Principal | None:
        """The key's principal when it was verified within ``ttl_s`` seconds (no lookup), else None."""
        digest = hashlib.sha256(key.encode("utf-8")).hexdigest()
        with self._lock:
            hit = self._seen.get(digest)
        if hit is not None and self._clock() - hit[0] < self._ttl:
            return hit[1]
        return None

    def __call__(self, key: str) -> Principal | None:
        hit = self.cached(key)
        if hit is not None:
            return hit
        digest = hashlib.sha256(key.encode("utf-8")).hexdigest()
        now = self._clock()
        principal = self._verify(key)
        with self._lock:
            if principal is None:
                self._seen.pop(digest, None)
            else:
                if len(self._seen) > 10_000:
                    self._seen.clear()
                self._seen[digest] = (now, principal)
        return principal


async def authenticate(
    request: Request, credentials: HTTPAuthorizationCredentials | None = Depends(bearer)
) -> Principal:
    """The request's :class:`Principal` (a FastAPI dependency); spends one unit of its rate limit.

    Raises:
        ApiError: 401 without a valid key, 429 over the key's rate limit.
    """
    if credentials is None or credentials.scheme.lower() != "bearer" or not credentials.credentials.strip():
        raise ApiError(401, "missing API key: send 'Authorization: Bearer KEY'", "header.authorization",
                       _UNAUTHORIZED)  # fmt: skip
    key = credentials.credentials.strip()
    if len(key) > 256:
        raise ApiError(401, "invalid API key", "header.authorization", _UNAUTHORIZED)
    verify = request.app.state.verify_key
    principal = verify.cached(key) if isinstance(verify, CachedVerifier) else None
    if principal is None:  # a database lookup: off the event loop
        principal = await run_in_threadpool(verify, key)
    if principal is None:
        raise ApiError(401, "invalid, revoked or disabled API key", "header.authorization", _UNAUTHORIZED)
    request.app.state.rate_limiter.check(principal.key_id)
    request.state.principal = principal
    return principal


def require(permission: str) -> Callable[..., Principal]:
    """A dependency admitting keys whose role has ``permission`` (see :mod:`core.auth.roles`).

    Raises (in the dependency):
        ApiError: 401 (no valid key), 403 (role lacks the permission), 429 (rate limit).
    """
    from core.auth.roles import allowed

    async def dependency(principal: Principal = Depends(authenticate)) -> Principal:
        if not allowed(principal.role, permission):
            raise ApiError(403, f"role {principal.role!r} may not do this (needs permission {permission!r})")
        return principal

    dependency.__name__ = f"require_{permission.replace('.', '_')}"
    return dependency


__all__ = [
    "CachedVerifier",
    "KeyVerifier",
    "Principal",
    "authenticate",
    "core_auth_verifier",
    "key_digest",
    "require",
]
