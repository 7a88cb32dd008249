"""Sign-in, roles and the audit trail inside the Streamlit suite.

``core/ui/app.py`` calls :func:`resolve_viewer` on every run, then builds the navigation for the
viewer's role (:func:`core.ui.shell.build_navigation`). Pages call :func:`require` first (a
second line of defence behind the navigation), :func:`viewer` to know who is there, and
:func:`audit` after an action that changes shared state.

Sign-in is on as soon as one user exists (``aigc users add``). A signed-in browser keeps a random
session token in the ``aigc_session`` cookie (SameSite=Strict), so a reload or a typed URL stays
signed in; the database keeps only its digest, and the session ends on sign-out, after
``AIGC_SESSION_IDLE_MINUTES`` (30) idle, ``AIGC_SESSION_MAX_HOURS`` (12), or when an admin changes
the user. With no user at all the suite is open (``aigc ui`` then listens only on loopback unless
``--no-auth`` is given) and every visitor acts as a local admin.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import streamlit as st
from sqlalchemy.engine import Engine

from core.auth import (
    AuditAction,
    Permission,
    Role,
    allowed,
    authenticate,
    end_session,
    record_event,
    resume_session,
    start_session,
    users_exist,
)
from core.auth.sessions import MAX_AGE
from core.storage import StorageError

logger = logging.getLogger(__name__)

SESSION_COOKIE = "aigc_session"
_TOKEN_KEY = "_aigc_session_token"
_SET_COOKIE_KEY = "_aigc_set_cookie"
_VIEWER_KEY = "_aigc_viewer"


@dataclass(frozen=True)
class Viewer:
    """Who is looking at the page.

    Attributes:
        name: User name; ``None`` when sign-in is off (no users) or nobody is signed in.
        role: The role; ``None`` for a visitor who is not signed in.
        auth_enabled: Whether sign-in is on (at least one user exists).
        problem: Why nobody can sign in right now (the database cannot be reached); the suite
            then shows this instead of any page (it fails closed).
    """

    name: str | None
    role: Role | None
    auth_enabled: bool
    problem: str | None = None

    @property
    def signed_in(self) -> bool:
        """Whether the viewer may see the suite (signed in, or sign-in is off)."""
        return self.role is not None

    def can(self, permission: Permission | str) -> bool:
        """Whether the viewer's role has ``permission``."""
        return allowed(self.role, permission)


_ENGINES: dict[str, Engine] = {}
_ENGINES_LOCK = threading.Lock()


def ui_engine() -> Engine:
    """The suite database's engine for this server process (one per URL).

    Nothing is migrated here: without the core tables there are no users, so sign-in is off
    (pages that need their tables say to run ``aigc db upgrade``).
    """
    from core.storage import create_engine, get_db_url

    url = get_db_url()
    with _ENGINES_LOCK:
        if url not in _ENGINES:
            _ENGINES[url] = create_engine(url)
        return _ENGINES[url]


def resolve_viewer() -> Viewer:
    """Who is here: a live session from this browser tab or its cookie; stored for :func:`viewer`."""
    try:
        found = _find_viewer(ui_engine())
    except StorageError as err:
        logger.error("Cannot check who is signed in", extra={"error": str(err)})
        found = Viewer(name=None, role=None, auth_enabled=True, problem=str(err))
    st.session_state[_VIEWER_KEY] = found
    return found


def _cookie_token() -> str | None:
    try:
        token = st.context.cookies.get(SESSION_COOKIE)
    except Exception:  # noqa: BLE001 - no browser connection (AppTest, bare mode): no cookie
        return None
    return token if isinstance(token, str) and token else None


def _find_viewer(engine: Engine) -> Viewer:
    if not users_exist(engine=engine):
        return Viewer(name=None, role=Role.ADMIN, auth_enabled=False)
    token = st.session_state.get(_TOKEN_KEY) or _cookie_token()
    user = resume_session(token, engine=engine)
    if user is None:
        st.session_state.pop(_TOKEN_KEY, None)
        return Viewer(name=None, role=None, auth_enabled=True)
    st.session_state[_TOKEN_KEY] = token
    return Viewer(name=user.name, role=user.role, auth_enabled=True)


def viewer() -> Viewer:
    """The viewer of this run (set by the suite's entry script before any page runs)."""
    found = st.session_state.get(_VIEWER_KEY)
    return found if isinstance(found, Viewer) else resolve_viewer()


def audit(
    action: str, target: str | None = None, details: Mapping[str, Any] | None = None, outcome: str = "ok"
) -> None:
    """Record an action of the current viewer in the audit log."""
    record_event(
        action, actor=viewer().name, target=target, outcome=outcome, details=details, engine=ui_engine()
    )


def refuse(page_title: str, permission: Permission | str) -> None:
    """Show that the viewer may not use this page, and audit the attempt (the page shows nothing else)."""
    who = viewer()
    audit(
        AuditAction.ACCESS_DENIED,
        target=page_title,
        details={"permission": str(permission)},
        outcome="denied",
    )
    st.title(page_title)
    st.error(
        f"Access denied: your role ({who.role.value if who.role else 'visitor'}) may not use this page. "
        "Ask an administrator if you need it.",
        icon=":material/block:",
    )
    st.stop()


def require(permission: Permission | str, page_title: str = "This page") -> Viewer:
    """Stop the page unless the viewer has ``permission`` (sign-in form for visitors).

    Returns:
        The viewer, when allowed.
    """
    who = viewer()
    if not who.signed_in:
        sign_in_form()
        st.stop()
    if not who.can(permission):
        refuse(page_title, permission)
    return who


def sign_in_form() -> None:
    """The sign-in form (all a visitor sees); a successful sign-in reruns the requested page."""
    problem = viewer().problem
    if problem is not None:
        st.error(f"Sign-in is unavailable. {problem}", icon=":material/database:")
        return
    st.title("Sign in")
    st.caption("aigc-suite · ask an administrator for an account (`aigc users add NAME --role ROLE`)")
    with st.form("aigc_sign_in", enter_to_submit=True):
        name = st.text_input("User name", key="aigc_sign_in_name", autocomplete="username")
        password = st.text_input("Password", type="password", key="aigc_sign_in_password")
        submitted = st.form_submit_button("Sign in", type="primary")
    if not submitted:
        return
    result = authenticate(name, password, engine=ui_engine(), source="ui")
    if not result.ok or result.user is None:
        st.error(result.message(), icon=":material/lock:")
        return
    token = start_session(result.user, engine=ui_engine())
    st.session_state[_TOKEN_KEY] = token
    st.session_state[_SET_COOKIE_KEY] = token
    st.rerun()


def session_cookie_script() -> None:
    """Right after sign-in, store the session token in the browser's cookie (once, invisible)."""
    token = st.session_state.pop(_SET_COOKIE_KEY, None)
    if token is None:
        return
    _cookie_js(f"{SESSION_COOKIE}={token}; path=/; SameSite=Strict; max-age={int(MAX_AGE.total_seconds())}")


def _cookie_js(cookie: str) -> None:
    secure = "(location.protocol === 'https:' ? '; Secure' : '')"
    st.html(
        f"<script>document.cookie = {json.dumps(cookie)} + {secure};</script>", unsafe_allow_javascript=True
    )


def sign_out() -> None:
    """End this browser's session (server side and cookie) and show the sign-in form."""
    who = viewer()
    end_session(st.session_state.pop(_TOKEN_KEY, None), engine=ui_engine())
    end_session(_cookie_token(), engine=ui_engine())
    if who.name is not None:
        audit(AuditAction.SIGN_OUT, target=who.name)
    st.session_state.clear()
    _cookie_js(f"{SESSION_COOKIE}=; path=/; SameSite=Strict; max-age=0")


def account_sidebar(who: Viewer) -> None:
    """Who is signed in, and the sign-out button (nothing when sign-in is off)."""
    if not who.auth_enabled or who.name is None or who.role is None:
        return
    with st.sidebar:
        st.caption(f"Signed in as **{who.name}** · {who.role.value}")
        if st.button("Sign out", icon=":material/logout:", key="aigc_sign_out"):
            sign_out()
            st.rerun()


__all__ = [
    "SESSION_COOKIE",
    "Viewer",
    "account_sidebar",
    "audit",
    "refuse",
    "require",
    "resolve_viewer",
    "session_cookie_script",
    "sign_in_form",
    "sign_out",
    "ui_engine",
    "viewer",
]
