"""Signed-in sessions of the UI: random tokens whose SHA-256 digests live in ``core_sessions``.

A session ends when it is older than ``max_age`` (default 12 h), unused for ``idle_timeout``
(default 30 min), signed out, or when the user's role or password changes or the user is
disabled (the user's ``credentials_version`` moves on). The browser keeps the token in a cookie
so a reload does not sign the agent out; the token is never shown, logged or put in a URL.
"""

from __future__ import annotations

import hashlib
import os
import secrets
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from core.auth.models import User, UserSession
from core.auth.users import UserInfo, _info
from core.storage import engine_for, session_scope, utcnow

MAX_AGE = timedelta(hours=float(os.environ.get("AIGC_SESSION_MAX_HOURS", "12")))
IDLE_TIMEOUT = timedelta(minutes=float(os.environ.get("AIGC_SESSION_IDLE_MINUTES", "30")))
# last_seen_at is written at most this often, so page reruns do not write on every click.
_TOUCH_EVERY = timedelta(seconds=30)


def token_digest(token: str) -> str:
    """The SHA-256 hex digest of a session token or API key (what the database keeps)."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def start_session(
    user: UserInfo,
    *,
    max_age: timedelta = MAX_AGE,
    now: datetime | None = None,
    engine: Engine | str | None = None,
) -> str:
    """Start a session for a signed-in user; returns its token (shown to nobody, kept in a cookie)."""
    now = now or utcnow()
    token = secrets.token_urlsafe(32)
    with engine_for(engine) as eng, session_scope(eng) as session:
        session.add(
            UserSession(
                token_hash=token_digest(token),
                user_id=user.id,
                credentials_version=user.credentials_version,
                created_at=now,
                last_seen_at=now,
                expires_at=now + max_age,
            )
        )
    return token


def resume_session(
    token: str | None,
    *,
    idle_timeout: timedelta = IDLE_TIMEOUT,
    now: datetime | None = None,
    engine: Engine | str | None = None,
) -> UserInfo | None:
    """The user of a live session, or ``None`` when the token is unknown, expired, idle or revoked.

    A live session's ``last_seen_at`` moves to ``now`` (at most every 30 s).
    """
    if not isinstance(token, str) or not token:
        return None
    now = now or utcnow()
    with engine_for(engine) as eng, session_scope(eng) as session:
        row = session.execute(
            sa.select(UserSession, User)
            .join(User, User.id == UserSession.user_id)
            .where(UserSession.token_hash == token_digest(token))
        ).one_or_none()
        if row is None:
            return None
        live, user = row
        if (
            live.ended_at is not None
            or live.expires_at <= now
            or live.last_seen_at + idle_timeout <= now
            or user.disabled
            or user.credentials_version != live.credentials_version
        ):
            if live.ended_at is None:
                live.ended_at = now
            return None
        if now - live.last_seen_at >= _TOUCH_EVERY:
            live.last_seen_at = now
        return _info(user)


def end_session(token: str | None, *, engine: Engine | str | None = None) -> None:
    """Sign a session out (its token stops working)."""
    if not token:
        return
    with engine_for(engine) as eng, session_scope(eng) as session:
        session.execute(
            sa.update(UserSession)
            .where(UserSession.token_hash == token_digest(token), UserSession.ended_at.is_(None))
            .values(ended_at=utcnow())
        )


__all__ = ["IDLE_TIMEOUT", "MAX_AGE", "end_session", "resume_session", "start_session", "token_digest"]
