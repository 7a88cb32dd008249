"""Users: add, list, change role, disable, reset password, and sign in with lockout.

After :data:`MAX_FAILED_ATTEMPTS` wrong passwords in a row a user is locked for
:data:`LOCKOUT` (15 minutes); the lock is not lifted by the right password, only by time or a
password reset. Unknown names and wrong passwords are refused with the same answer and in the
same time, so sign-in does not tell which names exist. Every change is written to the audit log.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError

from core.auth.audit import AuditAction, record_event
from core.auth.models import User
from core.auth.passwords import hash_password, needs_rehash, verify_password
from core.auth.roles import Role, parse_role
from core.control_chars import has_control, strip_control
from core.storage import engine_for, session_scope, utcnow

logger = logging.getLogger(__name__)

MAX_FAILED_ATTEMPTS = 5
LOCKOUT = timedelta(minutes=15)
NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,63}")


class UserError(ValueError):
    """A user command that cannot be done (unknown or duplicate name, bad role or password)."""


@dataclass(frozen=True)
class UserInfo:
    """What the suite shows about a user (never the password hash)."""

    id: int
    name: str
    role: Role
    disabled: bool
    failed_attempts: int
    locked_until: datetime | None
    credentials_version: int
    created_at: datetime
    last_sign_in_at: datetime | None

    def locked(self, now: datetime | None = None) -> bool:
        """Whether the user is locked out at ``now`` (default: now)."""
        return self.locked_until is not None and self.locked_until > (now or utcnow())

    def as_dict(self) -> dict[str, object]:
        """JSON-friendly fields (timestamps as ISO 8601 strings)."""
        return {
            "name": self.name,
            "role": self.role.value,
            "disabled": self.disabled,
            "locked_until": self.locked_until.isoformat() if self.locked() else None,
            "created_at": self.created_at.isoformat(),
            "last_sign_in_at": self.last_sign_in_at.isoformat() if self.last_sign_in_at else None,
        }


SignInStatus = Literal["ok", "invalid", "locked", "disabled"]


@dataclass(frozen=True)
class SignInResult:
    """The answer to a sign-in attempt; ``user`` is set only when ``status == "ok"``."""

    status: SignInStatus
    user: UserInfo | None = None
    locked_until: datetime | None = None

    @property
    def ok(self) -> bool:
        """Whether the user is signed in."""
        return self.status == "ok"

    def message(self) -> str:
        """What to tell the person at the sign-in form (the same for unknown names and wrong passwords)."""
        if self.status == "ok":
            return "Signed in."
        if self.status == "locked":
            until = f" until {self.locked_until:%H:%M} UTC" if self.locked_until else ""
            return f"Too many failed attempts: this account is locked{until}. Try again later."
        if self.status == "disabled":
            return "This account is disabled; ask an administrator."
        return "Wrong user name or password."


def _info(user: User) -> UserInfo:
    return UserInfo(
        id=user.id,
        name=user.name,
        role=Role(user.role),
        disabled=user.disabled,
        failed_attempts=user.failed_attempts,
        locked_until=user.locked_until,
        credentials_version=user.credentials_version,
        created_at=user.created_at,
        last_sign_in_at=user.last_sign_in_at,
    )


def check_name(name: str) -> str:
    """``name`` stripped, if it is a valid user name.

    Raises:
        UserError: Empty, too long, or characters other than letters, digits and ``._@-``.
    """
    name = name.strip()
    if not NAME_RE.fullmatch(name):
        raise UserError(
            f"invalid user name {name!r}: 1-64 letters, digits, '.', '_', '@' or '-', starting with a "
            "letter or digit"
        )
    return name


def add_user(
    name: str,
    role: Role | str,
    password: str,
    *,
    actor: str | None = None,
    engine: Engine | str | None = None,
) -> UserInfo:
    """Create a user.

    Args:
        name: Unique user name (see :func:`check_name`).
        role: One of :class:`Role`.
        password: The password (hashed with Argon2id; at least 8 characters).
        actor: Who adds the user (for the audit log).
        engine: Engine or URL; default :func:`core.storage.get_db_url` (must be migrated).

    Returns:
        The new user.

    Raises:
        UserError: Bad name, role or password, or the name is taken.
    """
    name = check_name(name)
    try:
        parsed = parse_role(str(role))
        password_hash = hash_password(password)
    except ValueError as err:
        raise UserError(str(err)) from err
    now = utcnow()
    with engine_for(engine) as eng:
        try:
            with session_scope(eng) as session:
                user = User(
                    name=name, role=parsed.value, password_hash=password_hash, created_at=now, updated_at=now
                )
                session.add(user)
                session.flush()
                info = _info(user)
        except IntegrityError as err:
            raise UserError(f"user {name!r} already exists") from err
        record_event(
            AuditAction.USER_ADD, actor=actor, target=name, details={"role": parsed.value}, engine=eng
        )
    return info


def get_user(name: str, *, engine: Engine | str | None = None) -> UserInfo | None:
    """The user called ``name``, or ``None``."""
    with engine_for(engine) as eng, session_scope(eng) as session:
        user = session.scalars(sa.select(User).where(User.name == name.strip())).one_or_none()
        return None if user is None else _info(user)


def get_user_by_id(user_id: int, *, engine: Engine | str | None = None) -> UserInfo | None:
    """The user with this id, or ``None``."""
    with engine_for(engine) as eng, session_scope(eng) as session:
        user = session.get(User, user_id)
        return None if user is None else _info(user)


def list_users(*, engine: Engine | str | None = None) -> list[UserInfo]:
    """Every user, by name."""
    with engine_for(engine) as eng, session_scope(eng) as session:
        return [_info(u) for u in session.scalars(sa.select(User).order_by(User.name))]


def users_exist(*, engine: Engine | str | None = None) -> bool:
    """Whether at least one user exists (then the UI requires sign-in); ``False`` before migration."""
    with engine_for(engine) as eng:
        if not sa.inspect(eng).has_table(User.__tablename__):
            return False
        with session_scope(eng) as session:
            return session.scalar(sa.select(sa.func.count()).select_from(User)) > 0


def _change(name: str, engine: Engine, **values: object) -> UserInfo:
    with session_scope(engine) as session:
        user = session.scalars(
            sa.select(User).where(User.name == name.strip()).with_for_update()
        ).one_or_none()
        if user is None:
            raise UserError(f"no user {name.strip()!r}; `aigc users list` shows who exists")
        for key, value in values.items():
            setattr(user, key, value)
        user.credentials_version = user.credentials_version + 1  # sign out everywhere
        user.updated_at = utcnow()
        session.flush()
        return _info(user)


def set_role(
    name: str, role: Role | str, *, actor: str | None = None, engine: Engine | str | None = None
) -> UserInfo:
    """Give ``name`` another role (their sessions end).

    Raises:
        UserError: Unknown user or role.
    """
    try:
        parsed = parse_role(str(role))
    except ValueError as err:
        raise UserError(str(err)) from err
    with engine_for(engine) as eng:
        info = _change(name, eng, role=parsed.value)
        record_event(
            AuditAction.USER_SET_ROLE,
            actor=actor,
            target=info.name,
            details={"role": parsed.value},
            engine=eng,
        )
    return info


def set_disabled(
    name: str, disabled: bool = True, *, actor: str | None = None, engine: Engine | str | None = None
) -> UserInfo:
    """Disable (or re-enable) ``name``: no sign-in, and their sessions and API keys stop working.

    Raises:
        UserError: Unknown user.
    """
    with engine_for(engine) as eng:
        info = _change(name, eng, disabled=disabled)
        action = AuditAction.USER_DISABLE if disabled else AuditAction.USER_ENABLE
        record_event(action, actor=actor, target=info.name, engine=eng)
    return info


def reset_password(
    name: str, password: str, *, actor: str | None = None, engine: Engine | str | None = None
) -> UserInfo:
    """Set a new password for ``name``; also lifts a lockout and ends their sessions.

    Raises:
        UserError: Unknown user or a password that breaks the policy.
    """
    try:
        password_hash = hash_password(password)
    except ValueError as err:
        raise UserError(str(err)) from err
    with engine_for(engine) as eng:
        info = _change(name, eng, password_hash=password_hash, failed_attempts=0, locked_until=None)
        record_event(AuditAction.USER_RESET_PASSWORD, actor=actor, target=info.name, engine=eng)
    return info


def authenticate(
    name: str,
    password: str,
    *,
    now: datetime | None = None,
    engine: Engine | str | None = None,
    source: str = "ui",
) -> SignInResult:
    """Check a user name and password, counting failures toward a lockout; audited.

    Args:
        name: The user name typed.
        password: The password typed.
        now: The time of the attempt (default: now; tests pass their own).
        engine: Engine or URL; default :func:`core.storage.get_db_url`.
        source: Where the attempt came from (``ui``, ``api``), for the audit log.

    Returns:
        ``ok`` with the user; ``invalid`` (unknown name or wrong password); ``locked`` (with
        ``locked_until``), also for the attempt that triggers the lock; ``disabled``.
    """
    now = now or utcnow()
    # A name with control characters is no user's (names are checked when created); it is looked up
    # as nothing, and audited without them (PostgreSQL refuses a NUL; a terminal obeys escapes).
    unknown = has_control(name)
    name = strip_control(name).strip()[:64]
    details = {"source": source}
    with engine_for(engine) as eng:
        with session_scope(eng) as session:
            user = None
            if not unknown:
                user = session.scalars(
                    sa.select(User).where(User.name == name).with_for_update()
                ).one_or_none()
            if user is not None and user.locked_until is not None and user.locked_until > now:
                result = SignInResult("locked", locked_until=user.locked_until)
            elif not verify_password(user.password_hash if user else None, password) or user is None:
                result = SignInResult("invalid")
                if user is not None:
                    user.failed_attempts = user.failed_attempts + 1
                    if user.failed_attempts >= MAX_FAILED_ATTEMPTS:
                        user.locked_until = now + LOCKOUT
                        user.failed_attempts = 0
                        result = SignInResult("locked", locked_until=user.locked_until)
                        details["lockout"] = "started"
            elif user.disabled:
                result = SignInResult("disabled")
            else:
                user.failed_attempts = 0
                user.locked_until = None
                user.last_sign_in_at = now
                if needs_rehash(user.password_hash):
                    user.password_hash = hash_password(password)
                session.flush()
                result = SignInResult("ok", user=_info(user))
        if result.ok:
            record_event(AuditAction.SIGN_IN, actor=name, target=name, details=details, engine=eng)
        else:
            record_event(
                AuditAction.SIGN_IN_FAILED,
                actor=None,
                target=name,
                outcome="denied",
                details={**details, "reason": result.status},
                engine=eng,
            )
            if details.get("lockout") == "started":
                until = result.locked_until.isoformat() if result.locked_until else None
                record_event(
                    AuditAction.LOCKOUT,
                    target=name,
                    outcome="denied",
                    details={"until": until, "attempts": MAX_FAILED_ATTEMPTS},
                    engine=eng,
                )
    return result


__all__ = [
    "LOCKOUT",
    "MAX_FAILED_ATTEMPTS",
    "SignInResult",
    "UserError",
    "UserInfo",
    "add_user",
    "authenticate",
    "check_name",
    "get_user",
    "get_user_by_id",
    "list_users",
    "reset_password",
    "set_disabled",
    "set_role",
    "users_exist",
]
