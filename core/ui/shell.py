"""Building blocks of the Streamlit suite, importable without running a page."""

from __future__ import annotations

import os
from pathlib import Path

from core.plugins import AppPages, ui_apps

HOME = str(Path(__file__).with_name("home.py"))
APP_SCRIPT = str(Path(__file__).with_name("app.py"))


def selected_apps() -> list[AppPages]:
    """Installed apps, filtered by ``AIGC_UI_APPS`` (comma-separated names) when set."""
    wanted = {a.strip() for a in os.environ.get("AIGC_UI_APPS", "").split(",") if a.strip()}
    return [a for a in ui_apps() if not wanted or a.name in wanted]


def build_navigation() -> dict[str, list]:
    """Sections for ``st.navigation``: the home page, then one section per app."""
    import streamlit as st

    sections: dict[str, list] = {"": [st.Page(HOME, title="Home", icon=":material/home:", default=True)]}
    for app in selected_apps():
        sections[app.title] = [
            st.Page(path, title=title, icon=icon, url_path=f"{app.name}-{Path(path).stem}")
            for path, title, icon in app.pages
        ]
    return sections
