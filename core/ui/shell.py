"""Building blocks of the Streamlit suite, importable without running a page."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from core.plugins import AppPages, ui_apps

if TYPE_CHECKING:
    from core.ui.auth import Viewer

UI_DIR = Path(__file__).parent
HOME = str(UI_DIR / "home.py")
APP_SCRIPT = str(UI_DIR / "app.py")
SIGN_IN = str(UI_DIR / "sign_in.py")
# Core's own pages: (script, title, icon, url path, permission).
ADMIN_PAGES: tuple[tuple[str, str, str, str, str], ...] = (
    (str(UI_DIR / "admin_pages" / "users.py"), "Users", ":material/group:", "admin-users", "users.manage"),
    (str(UI_DIR / "admin_pages" / "audit.py"), "Audit log", ":material/policy:", "admin-audit", "audit.read"),
)


def selected_apps() -> list[AppPages]:
    """Installed apps, filtered by ``AIGC_UI_APPS`` (comma-separated names) when set."""
    wanted = {a.strip() for a in os.environ.get("AIGC_UI_APPS", "").split(",") if a.strip()}
    return [a for a in ui_apps() if not wanted or a.name in wanted]


def page_allowed(viewer: Viewer, permission: str | None) -> bool:
    """Whether ``viewer`` may use a page that needs ``permission`` (``None``: admins only)."""
    if not viewer.signed_in:
        return False
    if permission is None:
        from core.auth import Role

        return viewer.role == Role.ADMIN
    return viewer.can(permission)


def page_plan(viewer: Viewer) -> list[tuple[str, str, str, str, str | None, bool]]:
    """Every page as ``(section, script, title, url_path, permission, allowed)``, in menu order."""
    plan: list[tuple[str, str, str, str, str | None, bool]] = []
    for app in selected_apps():
        for path, title, _icon in app.pages:
            permission = app.permission_for(path)
            url = f"{app.name}-{Path(path).stem}"
            plan.append((app.title, path, title, url, permission, page_allowed(viewer, permission)))
    if viewer.auth_enabled:
        for path, title, _icon, url, permission in ADMIN_PAGES:
            plan.append(("Administration", path, title, url, permission, page_allowed(viewer, permission)))
    return plan


def _icons() -> dict[str, str]:
    icons = {path: icon for app in selected_apps() for path, _t, icon in app.pages}
    icons.update({path: icon for path, _t, icon, _u, _p in ADMIN_PAGES})
    return icons


def build_navigation(viewer: Viewer | None = None) -> dict[str, list]:
    """Sections for ``st.navigation`` as ``viewer`` may see them.

    A visitor who is not signed in gets the sign-in form at every URL. A signed-in user sees the
    home page and the pages their role may use; every other page keeps its URL but is hidden from
    the menu and answers "access denied" (audited).
    """
    import streamlit as st

    from core.ui import auth

    who = viewer if viewer is not None else auth.viewer()
    if not who.signed_in:
        # Every URL of the suite answers with the sign-in form; after signing in it shows its page.
        pages = [st.Page(SIGN_IN, title="Sign in", icon=":material/login:", default=True)]
        pages += [st.Page(SIGN_IN, title="Sign in", url_path=url) for *_x, url, _perm, _ok in page_plan(who)]
        return {"": pages}
    icons = _icons()
    sections: dict[str, list] = {"": [st.Page(HOME, title="Home", icon=":material/home:", default=True)]}
    for section, path, title, url, permission, ok in page_plan(who):
        if ok:
            sections.setdefault(section, []).append(
                st.Page(path, title=title, icon=icons[path], url_path=url)
            )
        else:
            sections[""].append(
                st.Page(_refusal(title, permission), title=title, url_path=url, visibility="hidden")
            )
    return sections


def _refusal(title: str, permission: str | None):
    from core.ui import auth

    def refused() -> None:
        auth.refuse(title, permission or "admin")

    refused.__name__ = f"refused_{title.lower().replace(' ', '_')}"
    return refused
