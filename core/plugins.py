"""Discovery of the applications' CLI commands, UI pages and demo preparers.

``core`` never imports ``apps`` (see DESIGN.md): each app announces itself through entry
points in ``pyproject.toml``:

* ``aigc.cli`` — ``name = "module:typer_app"``: mounted as ``aigc NAME``;
* ``aigc.ui`` — ``name = "module:pages"``: a function returning ``AppPages``;
* ``aigc.demo`` — ``name = "module:prepare"``: a function ``prepare(data_dir: Path) -> None``
  that builds the app's demo state from its shipped sample data.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import Any

logger = logging.getLogger(__name__)

GROUP_CLI = "aigc.cli"
GROUP_UI = "aigc.ui"
GROUP_DEMO = "aigc.demo"

# Stable order in menus and help: the three apps first, anything else after, by name.
_ORDER = {"support": 0, "finance": 1, "recommend": 2}


@dataclass(frozen=True)
class AppPages:
    """What one app contributes to the Streamlit suite.

    Attributes:
        name: Plugin name (``support``, ``finance``, ``recommend``).
        title: Section title in the navigation.
        description: One paragraph for the home page.
        pages: ``(path_to_page_script, title, icon)`` tuples; paths are absolute.
        permission: What a role needs to use the app's pages (a :class:`core.auth.Permission`
            value such as ``"chat"``); ``None``: admins only.
        page_permissions: Per-page exceptions, keyed by the page script's file name
            (``{"admin.py": "kb.admin"}``).
    """

    name: str
    title: str
    description: str
    pages: list[tuple[str, str, str]] = field(default_factory=list)
    permission: str | None = None
    page_permissions: dict[str, str] = field(default_factory=dict)

    def permission_for(self, path: str) -> str | None:
        """The permission the page at ``path`` needs (``None``: admins only)."""
        from pathlib import Path

        return self.page_permissions.get(Path(path).name, self.permission)


def load_group(group: str) -> dict[str, Any]:
    """Load all entry points of ``group``, ordered; a broken plugin is logged and skipped."""
    found: dict[str, Any] = {}
    for ep in sorted(entry_points(group=group), key=lambda e: (_ORDER.get(e.name, 99), e.name)):
        try:
            found[ep.name] = ep.load()
        except Exception:  # noqa: BLE001 - one broken app must not take the suite down
            logger.exception("Could not load plugin", extra={"group": group, "plugin": ep.name})
    return found


def ui_apps() -> list[AppPages]:
    """The ``AppPages`` of every installed app."""
    apps = []
    for name, factory in load_group(GROUP_UI).items():
        try:
            apps.append(factory())
        except Exception:  # noqa: BLE001
            logger.exception("UI plugin failed", extra={"plugin": name})
    return apps


def demo_preparers() -> dict[str, Callable[..., Any]]:
    """``name -> prepare(data_dir)`` for every installed app."""
    return load_group(GROUP_DEMO)
