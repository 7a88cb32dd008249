"""Serving a team: users and roles, password sign-in with lockout, sessions, API keys, the audit log.

Everything lives in the suite's database (SQLite or PostgreSQL; core migration ``core_0002``):

* :mod:`core.auth.roles` — the four roles and the permission each page or command checks;
* :mod:`core.auth.passwords` — Argon2id hashing (argon2-cffi);
* :mod:`core.auth.users` — add / list / set role / disable / reset password; sign-in with lockout;
* :mod:`core.auth.sessions` — UI sessions that expire;
* :mod:`core.auth.api_keys` — keys for programs, stored as digests;
* :mod:`core.auth.audit` — who did what, when.
"""

from core.auth.api_keys import ApiKeyInfo, create_api_key, list_api_keys, revoke_api_key, verify_api_key
from core.auth.audit import AuditAction, audit_events, record_event
from core.auth.roles import Permission, Role, allowed, parse_role
from core.auth.sessions import end_session, resume_session, start_session
from core.auth.users import (
    LOCKOUT,
    MAX_FAILED_ATTEMPTS,
    SignInResult,
    UserError,
    UserInfo,
    add_user,
    authenticate,
    get_user,
    list_users,
    reset_password,
    set_disabled,
    set_role,
    users_exist,
)

__all__ = [
    "LOCKOUT",
    "MAX_FAILED_ATTEMPTS",
    "ApiKeyInfo",
    "AuditAction",
    "Permission",
    "Role",
    "SignInResult",
    "UserError",
    "UserInfo",
    "add_user",
    "allowed",
    "audit_events",
    "authenticate",
    "create_api_key",
    "end_session",
    "get_user",
    "list_api_keys",
    "list_users",
    "parse_role",
    "record_event",
    "reset_password",
    "resume_session",
    "revoke_api_key",
    "set_disabled",
    "set_role",
    "start_session",
    "users_exist",
    "verify_api_key",
]
