"""Roles and what each may do: one table of permissions every entry point checks.

Four roles, each a superset of nothing but what it needs:

* ``agent`` — chat with the bot, their own conversations, the hand-off queue;
* ``kb_admin`` — everything an agent does, plus the knowledge-base admin (uploads, re-index,
  calibration, feedback export);
* ``analyst`` — finance dashboards, acknowledging and muting alerts, the recommender pages;
* ``admin`` — everything, plus users, the audit log, typing arbitrary KB paths, seeing every
  agent's conversations, and promoting or rolling back model versions.

Pages and commands ask :func:`allowed` for a permission (a short dotted string), never for a role,
so a new role is one line here.
"""

from __future__ import annotations

from enum import StrEnum


class Role(StrEnum):
    """A user's role."""

    AGENT = "agent"
    KB_ADMIN = "kb_admin"
    ANALYST = "analyst"
    ADMIN = "admin"


class Permission(StrEnum):
    """Something a page, command or endpoint may need."""

    CHAT = "chat"  # agent chat, own conversations
    HANDOFFS = "handoffs"  # the hand-off queue
    CONVERSATIONS_ALL = "conversations.all"  # every agent's conversations
    KB_ADMIN = "kb.admin"  # uploads, re-index, calibration
    KB_ANY_PATH = "kb.any_path"  # type a KB directory outside the data directory
    FEEDBACK_EXPORT = "feedback.export"
    FINANCE_VIEW = "finance.view"
    ALERTS_MANAGE = "alerts.manage"  # acknowledge, mute, unmute
    RECOMMEND_VIEW = "recommend.view"
    USERS_MANAGE = "users.manage"
    AUDIT_READ = "audit.read"
    MODELS_MANAGE = "models.manage"  # promote and roll back model versions


_AGENT = frozenset({Permission.CHAT, Permission.HANDOFFS})
ROLE_PERMISSIONS: dict[Role, frozenset[Permission]] = {
    Role.AGENT: _AGENT,
    Role.KB_ADMIN: _AGENT | {Permission.KB_ADMIN, Permission.FEEDBACK_EXPORT},
    Role.ANALYST: frozenset({Permission.FINANCE_VIEW, Permission.ALERTS_MANAGE, Permission.RECOMMEND_VIEW}),
    Role.ADMIN: frozenset(Permission),
}


def parse_role(value: str) -> Role:
    """``value`` as a :class:`Role`.

    Raises:
        ValueError: Not one of the roles (the message lists them).
    """
    try:
        return Role(value.strip().lower())
    except ValueError:
        raise ValueError(
            f"unknown role {value!r}; choose one of {', '.join(r.value for r in Role)}"
        ) from None


def allowed(role: Role | str | None, permission: Permission | str) -> bool:
    """Whether ``role`` has ``permission`` (``None``, a visitor who is not signed in, has none).

    Unknown roles or permissions are refused rather than raising, so a typo fails closed.
    """
    if role is None:
        return False
    try:
        return Permission(permission) in ROLE_PERMISSIONS[Role(role)]
    except ValueError:
        return False


__all__ = ["ROLE_PERMISSIONS", "Permission", "Role", "allowed", "parse_role"]
