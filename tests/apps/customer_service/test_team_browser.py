"""A team on one deployment, in a real headless Chromium (issue 14).

A visitor sees only the sign-in form; three agents signed in in separate browser contexts chat at
the same time and each sees only their own conversations; an agent's direct URL to the KB admin
page is refused; a kb_admin uploads a file; an analyst acknowledges an alert; the admin's audit
page lists those actions.
"""

from __future__ import annotations

import csv
import io
import os
import shutil
import time
from pathlib import Path

import pytest

from core.auth import add_user, audit_events
from tests.apps.customer_service.bot_fixtures import calibrated_kb_dir, data_kb_dir  # noqa: F401
from tests.apps.finance_monitor.sample_db import build_sample_db, copy_db
from tests.browser import CHROMIUM_ARGS, screenshot, streamlit_server

pytestmark = pytest.mark.browser
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
expect = sync_api.expect

PASSWORD = "team-password-1"
FORMULA_NAME = '=HYPERLINK("http://evil.example","open")'
AGENTS = {  # agent -> a question of their own (quoted FAQ answers: fast, so all three finish together)
    "ana": "how do i track my order",
    "ben": "can i cancel my order",
    "cho": "i forgot my login password",
}


@pytest.fixture
def team_data_dir(tmp_path, data_kb_dir) -> Path:  # noqa: F811
    """The sample finance stream with its alerts, the calibrated sample KB, and one user per role."""
    data_dir = Path(os.environ["AIGC_DATA_DIR"])
    copy_db(build_sample_db(tmp_path / "sample.db", raise_alerts=True), data_dir)
    for name in AGENTS:
        add_user(name, "agent", PASSWORD, actor="test")
    add_user("kim", "kb_admin", PASSWORD, actor="test")
    add_user("ali", "analyst", PASSWORD, actor="test")
    add_user("lead", "admin", PASSWORD, actor="test")
    return data_dir


def sign_in(page, url: str, name: str) -> None:
    page.goto(url)
    page.get_by_role("heading", name="Sign in").wait_for(timeout=120_000)
    if page.get_by_text("Page not found").count():  # Streamlit's notice on a server's very first session
        page.keyboard.press("Escape")
    page.get_by_label("User name").fill(name)
    page.get_by_role("textbox", name="Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_text(f"Signed in as {name}").wait_for(timeout=60_000)
    # The session cookie (set by the page right after sign-in) keeps later page loads signed in.
    for _ in range(100):
        if any(c["name"] == "aigc_session" for c in page.context.cookies()):
            break
        time.sleep(0.1)
    else:
        raise AssertionError(f"no session cookie after {name} signed in")


def test_a_team_shares_one_deployment(team_data_dir):
    executable = shutil.which("chromium") or shutil.which("chromium-browser")
    if executable is None:
        pytest.skip("Debian's chromium is not installed (make test installs it: apt-get install chromium)")
    with (
        streamlit_server(["support", "finance"]) as url,
        sync_api.sync_playwright() as pw,
    ):
        browser = pw.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS, headless=True)

        opened = []

        def context_page(height: int = 1200):
            opened.append(browser.new_context(viewport={"width": 1400, "height": height}).new_page())
            return opened[-1]

        try:
            _scenario(url, context_page, team_data_dir)
        except Exception:
            for i, page in enumerate(opened):  # what each browser showed when it failed
                screenshot(page, f"team_failure_{i}")
            raise
        finally:
            browser.close()

    events = audit_events()
    by_action = {(e["action"], e["actor"]) for e in events}
    assert {("sign_in", n) for n in [*AGENTS, "kim", "ali", "lead"]} <= by_action
    assert ("access_denied", "ana") in by_action and ("kb_upload", "kim") in by_action
    assert ("alert_acknowledge", "ali") in by_action


def _scenario(url: str, context_page, team_data_dir: Path) -> None:
    """The issue's scenario, one actor after the other (the three agents overlap)."""
    # A visitor sees only the sign-in form, at the home URL and at a page's URL.
    visitor = context_page()
    for path in ("", "/support-chat", "/admin-audit"):
        visitor.goto(url + path)
        visitor.get_by_role("heading", name="Sign in").wait_for(timeout=120_000)
        time.sleep(1.0)
        body = visitor.inner_text("body")
        assert "Agent chat" not in body and "Audit log" not in body and "Customer service" not in body
        assert visitor.locator("[data-testid='stSidebarNav']").count() == 0
    screenshot(visitor, "team_visitor_sign_in")
    # A sign-in attempt whose user name is a spreadsheet formula: the audit log records it as text.
    visitor.get_by_label("User name").fill(FORMULA_NAME)
    visitor.get_by_role("textbox", name="Password").fill("wrong-password")
    visitor.get_by_role("button", name="Sign in").click()
    visitor.get_by_text("Wrong user name or password").first.wait_for(timeout=60_000)

    # Three agents, three browser contexts, asking at the same time.
    pages = {}
    for name in AGENTS:
        pages[name] = context_page()
        sign_in(pages[name], url, name)
        pages[name].goto(f"{url}/support-chat")  # a new page load: the session cookie signs it in
        pages[name].get_by_role("heading", name="Agent chat").wait_for(timeout=120_000)
    for name, question in AGENTS.items():
        box = pages[name].get_by_placeholder("Type the customer's question")
        box.fill(question)
        box.press("Enter")
    for name in AGENTS:
        pages[name].get_by_text("route: faq").first.wait_for(timeout=180_000)
    for name, question in AGENTS.items():
        sidebar = pages[name].locator("[data-testid='stSidebar']")
        expect(sidebar.get_by_role("button", name=question[:40])).to_be_visible(timeout=30_000)
        for other, theirs in AGENTS.items():
            if other != name:
                assert sidebar.get_by_role("button", name=theirs[:40]).count() == 0, (name, other)
        nav = sidebar.locator("[data-testid='stSidebarNav']")
        assert nav.get_by_text("Knowledge base").count() == 0  # absent from an agent's menu
    screenshot(pages["ana"], "team_agent_chat")

    # An agent's direct URL to the KB admin page is refused.
    ana = pages["ana"]
    ana.goto(f"{url}/support-admin")
    ana.get_by_text("Access denied").wait_for(timeout=60_000)
    assert ana.locator("[data-testid='stFileUploader']").count() == 0
    screenshot(ana, "team_agent_refused")

    # A kb_admin uploads a file.
    kim = context_page()
    sign_in(kim, url, "kim")
    kim.goto(f"{url}/support-admin")
    kim.get_by_role("heading", name="Knowledge base").wait_for(timeout=120_000)
    upload = team_data_dir / "extra_faq.csv"
    upload.write_text(
        "id,question,answer,title\n"
        "team-01,Do you ship on Sundays?,We do not ship on Sundays.,Sunday shipping\n"
    )
    kim.locator("[data-testid='stFileUploader'] input[type='file']").set_input_files(str(upload))
    kim.get_by_role("button", name="Save uploaded files").click()
    kim.get_by_text("Saved extra_faq.csv").wait_for(timeout=60_000)
    screenshot(kim, "team_kb_admin_upload")

    # An analyst acknowledges an alert.
    ali = context_page(height=1800)
    sign_in(ali, url, "ali")
    ali.goto(f"{url}/finance-alerts")
    ali.get_by_role("heading", name="Alerts").wait_for(timeout=120_000)
    acknowledge = ali.get_by_role("button", name="Acknowledge")
    acknowledge.wait_for(timeout=60_000)
    table = ali.locator("[data-testid='stTable']")
    expect(table.locator("tbody tr")).to_have_count(2, timeout=60_000)
    acknowledge.click()
    # The Open filter now lists only the other alert.
    expect(table.locator("tbody tr")).to_have_count(1, timeout=60_000)
    time.sleep(1.5)
    screenshot(ali, "team_analyst_acknowledged")

    # The admin's audit page lists those actions.
    lead = context_page(height=2000)
    sign_in(lead, url, "lead")
    lead.goto(f"{url}/admin-audit")
    lead.get_by_role("heading", name="Audit log").wait_for(timeout=120_000)
    table = lead.locator("[data-testid='stTable']")
    for action in ("sign_in", "access_denied", "kb_upload", "alert_acknowledge"):
        expect(table.get_by_text(action, exact=True).first).to_be_visible(timeout=30_000)
    time.sleep(1.0)
    screenshot(lead, "team_audit_log")
    # Its CSV download opens safely in a spreadsheet: the formula user name is quoted text.
    with lead.expect_download() as download:
        lead.get_by_role("button", name="Download as CSV").click()
    rows = list(csv.DictReader(io.StringIO(Path(download.value.path()).read_text(encoding="utf-8"))))
    assert "'" + FORMULA_NAME in {r["target"] for r in rows if r["action"] == "sign_in_failed"}
    assert not any(v.startswith("=") for r in rows for v in r.values())
