"""The audit log: who did what, when (``core_audit_log``).

Every action that changes shared state or access records one event: sign-ins and their failures,
lockouts, knowledge-base uploads and re-indexes, calibration, alert acknowledge/mute/unmute,
hand-offs taken, released and resolved, feedback exports, model refreshes, promotions and
rollbacks, and user changes. Read them with :func:`audit_events`, ``aigc audit`` or the admin's
Audit page. Events never hold secrets (no passwords, tokens or keys).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from core.auth.models import AuditEvent
from core.storage import engine_for, session_scope, utcnow

logger = logging.getLogger(__name__)


class AuditAction:
    """The actions the suite records (plain strings, so apps may add their own)."""

    SIGN_IN = "sign_in"
    SIGN_IN_FAILED = "sign_in_failed"
    SIGN_OUT = "sign_out"
    LOCKOUT = "lockout"
    ACCESS_DENIED = "access_denied"
    USER_ADD = "user_add"
    USER_SET_ROLE = "user_set_role"
    USER_DISABLE = "user_disable"
    USER_ENABLE = "user_enable"
    USER_RESET_PASSWORD = "user_reset_password"
    API_KEY_CREATE = "api_key_create"
    API_KEY_REVOKE = "api_key_revoke"
    KB_UPLOAD = "kb_upload"
    KB_REINDEX = "kb_reindex"
    KB_CALIBRATE = "kb_calibrate"
    KB_GAP_REPORT = "kb_gap_report"
    KB_GAP_APPROVE = "kb_gap_approve"
    KB_GAP_REJECT = "kb_gap_reject"
    FEEDBACK_EXPORT = "feedback_export"
    QUESTIONS_EXPORT = "questions_export"
    ALERT_ACKNOWLEDGE = "alert_acknowledge"
    ALERT_MUTE = "alert_mute"
    ALERT_UNMUTE = "alert_unmute"
    MODEL_REFRESH = "model_refresh"
    MODEL_PROMOTE = "model_promote"
    MODEL_ROLLBACK = "model_rollback"


def record_event(
    action: str,
    *,
    actor: str | None = None,
    target: str | None = None,
    outcome: str = "ok",
    details: Mapping[str, Any] | None = None,
    engine: Engine | str | None = None,
    session: Session | None = None,
) -> None:
    """Append one event to the audit log.

    Args:
        action: What happened (see :class:`AuditAction`).
        actor: The user name (or ``cli:<login>`` for commands run at a terminal); ``None`` for a
            visitor who is not signed in.
        target: What it happened to (a user name, KB directory, alert id...).
        outcome: ``ok``, ``denied`` or ``failed``.
        details: JSON-serialisable facts (never secrets).
        engine: Engine or URL; default :func:`core.storage.get_db_url`.
        session: Add the event in this session instead (it commits with the caller's change, so
            an action and its audit entry are stored together or not at all); ``engine`` is unused.

    Raises:
        ValueError: ``details`` is not JSON-serialisable, or ``action`` is empty.
    """
    if not action.strip():
        raise ValueError("audit action must not be empty")
    payload = dict(details or {})
    try:
        json.dumps(payload)
    except (TypeError, ValueError) as err:
        raise ValueError(f"audit details must be JSON-serialisable: {err}") from err
    row = AuditEvent(
        at=utcnow(),
        actor=actor,
        action=action[:64],
        target=None if target is None else str(target)[:1024],
        outcome=outcome[:16],
        details=payload,
    )
    if session is not None:
        session.add(row)
    else:
        with engine_for(engine) as eng, session_scope(eng) as own:
            own.add(row)
    logger.debug("Audit", extra={"action": action, "actor": actor, "target": target, "outcome": outcome})


def audit_events(
    since: datetime | None = None,
    *,
    actor: str | None = None,
    action: str | None = None,
    limit: int = 1000,
    engine: Engine | str | None = None,
) -> list[dict[str, Any]]:
    """Recorded events, newest first.

    Args:
        since: Only events at or after this aware datetime.
        actor: Only this actor's events.
        action: Only this action.
        limit: At most this many events.
        engine: Engine or URL; default :func:`core.storage.get_db_url`.

    Returns:
        ``{"id", "at", "actor", "action", "target", "outcome", "details"}`` dicts.
    """
    stmt = sa.select(AuditEvent).order_by(AuditEvent.at.desc(), AuditEvent.id.desc()).limit(limit)
    if since is not None:
        stmt = stmt.where(AuditEvent.at >= since)
    if actor is not None:
        stmt = stmt.where(AuditEvent.actor == actor)
    if action is not None:
        stmt = stmt.where(AuditEvent.action == action)
    with engine_for(engine) as eng, session_scope(eng) as session:
        return [
            {
                "id": e.id,
                "at": e.at,
                "actor": e.actor,
                "action": e.action,
                "target": e.target,
                "outcome": e.outcome,
                "details": e.details,
            }
            for e in session.scalars(stmt)
        ]


__all__ = ["AuditAction", "audit_events", "record_event"]
