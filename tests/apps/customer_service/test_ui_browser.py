"""The agent chat in a real headless Chromium: ask a question, see the answer and its source ids."""

from __future__ import annotations

import time

import pytest

from tests.apps.customer_service.bot_fixtures import calibrated_kb_dir, data_kb_dir  # noqa: F401
from tests.browser import chromium_page, close_page_not_found, screenshot, streamlit_server

pytestmark = pytest.mark.browser


def test_chat_answers_with_sources_in_the_browser(data_kb_dir):  # noqa: F811
    with streamlit_server(["support"]) as url, chromium_page(height=1400) as page:
        page.goto(f"{url}/support-chat")
        page.get_by_role("heading", name="Agent chat").wait_for(timeout=120_000)
        close_page_not_found(page)
        box = page.get_by_placeholder("Type the customer's question")
        box.fill("i forgot my login password")
        box.press("Enter")
        page.get_by_text("Click Sign in, then Forgot password").first.wait_for(timeout=120_000)
        source = page.get_by_text("Source [acct-01] Resetting your password")
        source.wait_for(timeout=60_000)
        page.get_by_text("route: faq").wait_for(timeout=30_000)
        source.click()  # open the expander: the entry's text and link
        page.get_by_text("https://help.pinecrest.example/faq/acct-01").wait_for(timeout=30_000)

        box.fill("What is the return window for shoes?")
        box.press("Enter")
        page.get_by_text("quoted from sources").first.wait_for(timeout=120_000)
        passage = page.get_by_text("Source [policies/returns.md#return-window-0]").first
        passage.click()  # the quoted sentences are highlighted in the passage
        highlight = page.locator("span", has_text="You have 30 days from the day of delivery").last
        highlight.wait_for(timeout=30_000)
        assert "30 days" in page.inner_text("body") and "4 weeks" not in page.inner_text("body")
        time.sleep(1.0)
        screenshot(page, "support_chat_quoted")

        box.fill("how tall is mount everest")
        box.press("Enter")
        page.get_by_text("Hand-off: the bot is not confident").wait_for(timeout=120_000)
        time.sleep(1.0)
        screenshot(page, "support_chat")
