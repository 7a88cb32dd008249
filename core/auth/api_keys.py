"""API keys: long random secrets owned by a user, stored only as SHA-256 digests.

A key looks like ``aigc_<prefix>_<secret>``: the 8-character prefix is kept in clear so that lists
and the audit log can tell keys apart, the whole key is shown once when created. A key acts with
its owner's role; it stops working when revoked or when its owner is disabled.

Example:
    >>> info, key = create_api_key("alice", label="crm")   # show ``key`` once
    >>> verify_api_key(key).name
    'alice'
"""

from __future__ import annotations

import hmac
import logging
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from core.auth.audit import AuditAction, record_event
from core.auth.models import ApiKey, User
from core.auth.sessions import token_digest
from core.auth.users import UserError, UserInfo, _info
from core.storage import engine_for, session_scope, utcnow

logger = logging.getLogger(__name__)

KEY_PREFIX = "aigc_"
# last_used_at is written at most this often, so a busy client does not write on every request.
_TOUCH_EVERY = timedelta(seconds=60)


@dataclass(frozen=True)
class ApiKeyInfo:
    """What can be shown about a key (never the key)."""

    prefix: str
    user: str
    label: str | None
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None

    def as_dict(self) -> dict[str, object]:
        """JSON-friendly fields."""
        return {
            "prefix": self.prefix,
            "user": self.user,
            "label": self.label,
            "created_at": self.created_at.isoformat(),
            "last_used_at": self.last_used_at.isoformat() if self.last_used_at else None,
            "revoked_at": self.revoked_at.isoformat() if self.revoked_at else None,
        }


def _key_info(key: ApiKey, user_name: str) -> ApiKeyInfo:
    return ApiKeyInfo(key.prefix, user_name, key.label, key.created_at, key.last_used_at, key.revoked_at)


def create_api_key(
    user_name: str, *, label: str | None = None, actor: str | None = None, engine: Engine | str | None = None
) -> tuple[ApiKeyInfo, str]:
    """Create a key for ``user_name``.

    Returns:
        ``(info, key)``: the key itself is returned only here; store it now.

    Raises:
        UserError: No such user, or the user is disabled.
    """
    with engine_for(engine) as eng:
        with session_scope(eng) as session:
            user = session.scalars(sa.select(User).where(User.name == user_name.strip())).one_or_none()
            if user is None:
                raise UserError(f"no user {user_name.strip()!r}; `aigc users list` shows who exists")
            if user.disabled:
                raise UserError(f"user {user.name!r} is disabled; enable them before creating a key")
            prefix = secrets.token_hex(4)
            key = f"{KEY_PREFIX}{prefix}_{secrets.token_urlsafe(32)}"
            row = ApiKey(
                prefix=prefix,
                key_hash=token_digest(key),
                user_id=user.id,
                label=(label or "").strip()[:128] or None,
                created_at=utcnow(),
            )
            session.add(row)
            session.flush()
            info = _key_info(row, user.name)
        record_event(
            AuditAction.API_KEY_CREATE,
            actor=actor,
            target=info.user,
            details={"prefix": prefix, "label": info.label},
            engine=eng,
        )
    return info, key


def _prefix_of(key: str) -> str | None:
    if not key.startswith(KEY_PREFIX):
        return None
    prefix, sep, secret = key.removeprefix(KEY_PREFIX).partition("_")
    return prefix if sep and secret and len(prefix) == 8 else None


def verify_api_key(
    key: str | None, *, now: datetime | None = None, engine: Engine | str | None = None
) -> UserInfo | None:
    """The owner of ``key`` (with their role), or ``None`` for an unknown, revoked or disabled key."""
    prefix = _prefix_of((key or "").strip())
    if prefix is None:
        return None
    now = now or utcnow()
    with engine_for(engine) as eng, session_scope(eng) as session:
        row = session.execute(
            sa.select(ApiKey, User).join(User, User.id == ApiKey.user_id).where(ApiKey.prefix == prefix)
        ).one_or_none()
        if row is None:
            return None
        api_key, user = row
        if not hmac.compare_digest(api_key.key_hash, token_digest((key or "").strip())):
            return None
        if api_key.revoked_at is not None or user.disabled:
            return None
        if api_key.last_used_at is None or now - api_key.last_used_at >= _TOUCH_EVERY:
            api_key.last_used_at = now
        return _info(user)


def revoke_api_key(
    prefix: str, *, actor: str | None = None, engine: Engine | str | None = None
) -> ApiKeyInfo:
    """Revoke the key with this prefix (``aigc_<prefix>_...``; the bare prefix or the whole key).

    Raises:
        UserError: No key with this prefix.
    """
    prefix = _prefix_of(prefix.strip()) or prefix.strip()
    with engine_for(engine) as eng:
        with session_scope(eng) as session:
            row = session.execute(
                sa.select(ApiKey, User.name)
                .join(User, User.id == ApiKey.user_id)
                .where(ApiKey.prefix == prefix)
            ).one_or_none()
            if row is None:
                raise UserError(f"no API key with prefix {prefix!r}")
            api_key, user_name = row
            if api_key.revoked_at is None:
                api_key.revoked_at = utcnow()
            info = _key_info(api_key, user_name)
        record_event(
            AuditAction.API_KEY_REVOKE, actor=actor, target=user_name, details={"prefix": prefix}, engine=eng
        )
    return info


def list_api_keys(user_name: str | None = None, *, engine: Engine | str | None = None) -> list[ApiKeyInfo]:
    """Keys (never their secrets), newest first; only ``user_name``'s when given."""
    stmt = sa.select(ApiKey, User.name).join(User, User.id == ApiKey.user_id)
    if user_name is not None:
        stmt = stmt.where(User.name == user_name.strip())
    with engine_for(engine) as eng, session_scope(eng) as session:
        return [
            _key_info(k, n)
            for k, n in session.execute(stmt.order_by(ApiKey.created_at.desc(), ApiKey.id.desc()))
        ]


__all__ = ["KEY_PREFIX", "ApiKeyInfo", "create_api_key", "list_api_keys", "revoke_api_key", "verify_api_key"]
