"""The finance dashboard in a real headless Chromium, on a database filled from the sample stream."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from apps.finance_monitor.ui import queries
from core.storage import create_engine
from tests.apps.finance_monitor.sample_db import build_sample_db, copy_db, raise_sample_alerts
from tests.browser import assert_page_found, chromium_page, free_port, screenshot, streamlit_server

pytestmark = pytest.mark.browser
expect = pytest.importorskip("playwright.sync_api", reason="playwright is not installed").expect


@pytest.fixture
def sample_data_dir(tmp_path) -> Path:
    """This test's data directory, holding the sample stream scored with its true labels (no alerts yet)."""
    data_dir = Path(os.environ["AIGC_DATA_DIR"])
    copy_db(build_sample_db(tmp_path / "sample.db", raise_alerts=False), data_dir)
    return data_dir


def raise_alerts(data_dir: Path) -> int:
    """What the monitor's alert step does: apply the shipped rules to the scored items."""
    engine = create_engine(f"sqlite:///{data_dir / 'aigc.db'}")
    try:
        return raise_sample_alerts(engine)
    finally:
        engine.dispose()


def test_dashboard_shows_the_surge_alert_as_it_is_raised_and_acknowledges_it(sample_data_dir):
    with streamlit_server(["finance"]) as url, chromium_page(height=1800) as page:
        page.goto(f"{url}/finance-alerts")
        page.get_by_text("No open alerts").wait_for(timeout=60_000)
        assert_page_found(page)
        sidebar = page.locator("[data-testid='stSidebar']")
        sidebar.locator("[data-testid='stSelectbox']").filter(has_text="Every").click()
        page.get_by_role("option", name="10 s").click()
        expect(sidebar.get_by_role("combobox", name="Every")).to_have_value("10 s")
        time.sleep(3)  # let the rerun from the selection finish: from now on only the timer redraws

        assert raise_alerts(sample_data_dir) == 2
        table = page.locator("[data-testid='stTable']")
        expect(table.locator("tbody tr")).to_have_count(2, timeout=25_000)  # no reload: auto-refresh
        assert table.get_by_text("topic-negative-surge").count() == 1
        assert table.get_by_text("topic: Energy | Oil").count() == 1
        assert table.get_by_text("entity: NWDE").count() == 1
        assert table.get_by_text("Thu 05 Mar 13:00–16:00").count() == 1
        expect(page.get_by_role("heading", name="Alert #2: NWDE")).to_be_visible()
        page.get_by_role("heading", name="Items behind the alert").wait_for(timeout=30_000)
        time.sleep(1.5)  # let Vega draw before the screenshot
        screenshot(page, "finance_alerts")

        page.get_by_role("button", name="Acknowledge").click()
        # The Open filter now lists only the other alert, and the detail switches to it.
        expect(table.locator("tbody tr")).to_have_count(1, timeout=30_000)
        expect(table).not_to_contain_text("entity: NWDE")
        expect(page.get_by_role("heading", name="Alert #1: Energy | Oil")).to_be_visible(timeout=30_000)
        time.sleep(1.5)
        screenshot(page, "finance_alert_acknowledged")

        page.locator("[data-testid='stSidebarNav']").get_by_text("Sentiment trend").click()
        page.get_by_text("1 open alert(s)").wait_for(timeout=60_000)
        page.locator("[data-testid='stVegaLiteChart']").first.wait_for(timeout=30_000)
        page.get_by_text("Shaded: 1 alert window(s) on the shown topics.").wait_for(timeout=30_000)
        time.sleep(1.5)
        screenshot(page, "finance_overview")

    engine = create_engine(f"sqlite:///{sample_data_dir / 'aigc.db'}")
    try:
        assert sorted(queries.alerts_frame(engine)["status"]) == ["acknowledged", "open"]
    finally:
        engine.dispose()


def test_finance_ui_command_serves_only_this_app():
    port = free_port()
    cmd = [sys.executable, "-m", "core.cli", "finance", "ui", "--port", str(port), "--address", "127.0.0.1"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
            try:
                with urllib.request.urlopen(f"{url}/_stcore/health", timeout=1):
                    break
            except OSError:
                assert time.monotonic() < deadline, "aigc finance ui did not become healthy in 60 s"
                time.sleep(0.3)
        with chromium_page() as page:
            page.goto(url)
            nav = page.locator("[data-testid='stSidebarNav']")
            nav.get_by_text("Sentiment trend").wait_for(timeout=60_000)
            assert nav.get_by_text("Alerts").count() == 1
            page.get_by_role("heading", name="aigc-suite").wait_for(timeout=60_000)
            page.get_by_text("minilm-l6").first.wait_for(timeout=60_000)  # the home page is fully drawn
            assert page.get_by_role("heading", name="Finance monitor").count() == 1
            assert page.get_by_text("Customer service").count() == 0
            assert page.get_by_text("Recommender").count() == 0
            screenshot(page, "finance_ui_home")
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


def test_entities_page_in_a_browser(sample_data_dir):
    from apps.finance_monitor.entities import EntityLinker, relink
    from apps.finance_monitor.sample_data import SAMPLE_WATCHLIST
    from apps.finance_monitor.watchlist import load_watchlist

    engine = create_engine(f"sqlite:///{sample_data_dir / 'aigc.db'}")
    try:
        relink(engine, EntityLinker(load_watchlist(SAMPLE_WATCHLIST)))
    finally:
        engine.dispose()
    with streamlit_server(["finance"]) as url, chromium_page(height=2400) as page:
        page.goto(f"{url}/finance-entities?entity=NWDE")
        page.get_by_role("heading", name="Stories mentioning NWDE").wait_for(timeout=60_000)
        assert_page_found(page)
        expect(page.get_by_role("heading", name="NWDE: mean sentiment per day")).to_be_visible()
        expect(page.locator("[data-testid='stVegaLiteChart']")).to_have_count(3, timeout=30_000)
        time.sleep(1.5)  # let Vega draw before the screenshot
        screenshot(page, "finance_entities")
