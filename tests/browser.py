"""Helpers for end-to-end tests in a real headless Chromium (Debian's package, driven by Playwright)."""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from core.ui.server import CHROMIUM_ARGS, free_port, ui_server

__all__ = [
    "CHROMIUM_ARGS",
    "assert_page_found",
    "chromium_page",
    "free_port",
    "screenshot",
    "streamlit_server",
]

SCREENSHOTS = Path(__file__).resolve().parent / "_artifacts" / "screenshots"


@contextlib.contextmanager
def streamlit_server(apps: list[str] | None = None, env: dict[str, str] | None = None) -> Iterator[str]:
    """Run ``aigc ui`` on a free port; yield its base URL; stop it (and its Streamlit child) afterwards."""
    with (
        tempfile.TemporaryDirectory(prefix="aigc-ui-") as tmp,
        ui_server(apps, env, Path(tmp) / "ui.log") as (_, url),
    ):
        yield url


@contextlib.contextmanager
def chromium_page(width: int = 1400, height: int = 1000):
    """A Playwright page in Debian's headless Chromium; skips when Chromium is absent."""
    executable = shutil.which("chromium") or shutil.which("chromium-browser")
    if executable is None:
        pytest.skip("Debian's chromium is not installed (make test installs it: apt-get install chromium)")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": width, "height": height})
            yield page
        finally:
            browser.close()


def assert_page_found(page, wait_s: float = 1.0) -> None:
    """Assert that Streamlit shows no "Page not found" notice for the deep link just opened.

    A server's very first session used to show one (a ``pages/`` folder beside the entry script put
    Streamlit in its old folder-based multipage mode for that first run); the tests open deep links on
    fresh servers, so this catches it coming back.
    """
    import time

    time.sleep(wait_s)
    assert page.get_by_text("Page not found").count() == 0, "Streamlit said: Page not found"


def screenshot(page, name: str) -> Path:
    """Save a full-page screenshot under tests/_artifacts/screenshots (for people to look at)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path
