"""Core's tables for serving a team: users, UI sessions, API keys and the audit log.

Created by core's migration ``core_0002`` (``aigc db upgrade`` / :func:`core.schema.migrate`).
Secrets are never stored: passwords as Argon2id hashes, session tokens and API keys as SHA-256
digests (they are long random strings, so a fast hash is enough and lookups stay cheap).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from core.storage import CoreBase, utcnow


class User(CoreBase):
    """A person who signs in to the UI (or owns API keys)."""

    __tablename__ = "core_users"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(64), unique=True)
    role: Mapped[str] = mapped_column(sa.String(16))
    password_hash: Mapped[str] = mapped_column(sa.String(256))
    disabled: Mapped[bool] = mapped_column(default=False)
    failed_attempts: Mapped[int] = mapped_column(default=0)
    locked_until: Mapped[datetime | None]
    # Bumped when the password or role changes or the user is disabled: older sessions end.
    credentials_version: Mapped[int] = mapped_column(default=1)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    last_sign_in_at: Mapped[datetime | None]


class UserSession(CoreBase):
    """A signed-in browser: the digest of its token, when it started and was last seen."""

    __tablename__ = "core_sessions"

    id: Mapped[int] = mapped_column(primary_key=True)
    token_hash: Mapped[str] = mapped_column(sa.String(64), unique=True)
    user_id: Mapped[int] = mapped_column(sa.ForeignKey("core_users.id", ondelete="CASCADE"), index=True)
    credentials_version: Mapped[int]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(index=True)
    ended_at: Mapped[datetime | None]


class ApiKey(CoreBase):
    """An API key of a user: only its digest and a short prefix (to tell keys apart) are kept."""

    __tablename__ = "core_api_keys"

    id: Mapped[int] = mapped_column(primary_key=True)
    prefix: Mapped[str] = mapped_column(sa.String(16), unique=True)
    key_hash: Mapped[str] = mapped_column(sa.String(64))
    user_id: Mapped[int] = mapped_column(sa.ForeignKey("core_users.id", ondelete="CASCADE"), index=True)
    label: Mapped[str | None] = mapped_column(sa.String(128))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_used_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]


class AuditEvent(CoreBase):
    """Who did what, when: one row per sign-in, failure, lockout, upload, re-index, user change..."""

    __tablename__ = "core_audit_log"

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    actor: Mapped[str | None] = mapped_column(sa.String(64), index=True)
    action: Mapped[str] = mapped_column(sa.String(64), index=True)
    target: Mapped[str | None] = mapped_column(sa.String(1024))
    outcome: Mapped[str] = mapped_column(sa.String(16), default="ok")  # ok | denied | failed
    details: Mapped[dict[str, Any]] = mapped_column(default=dict)


__all__ = ["ApiKey", "AuditEvent", "User", "UserSession"]
