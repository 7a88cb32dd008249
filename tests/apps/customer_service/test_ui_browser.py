"""The agent chat and the hand-off queue in a real headless Chromium: ask, hand off, take, reply, resolve."""

from __future__ import annotations

import time

import pytest

from tests.apps.customer_service.bot_fixtures import calibrated_kb_dir, data_kb_dir  # noqa: F401
from tests.browser import assert_page_found, chromium_page, screenshot, streamlit_server

pytestmark = pytest.mark.browser
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
expect = sync_api.expect


def settled(locator, prefix: str, timeout_s: float = 60.0):
    """``locator`` once the rerun has left one element whose value starts with ``prefix``.

    While Streamlit reruns, the old element can stand beside its replacement for a moment.
    """
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if locator.count() == 1 and (locator.input_value(timeout=1_000) or "").startswith(prefix):
                return locator
        except sync_api.Error:  # replaced between the two calls: look again
            pass
        time.sleep(0.1)
    raise AssertionError(f"no single element with a value starting {prefix!r}")


def test_chat_answers_with_sources_in_the_browser(data_kb_dir):  # noqa: F811
    with streamlit_server(["support"]) as url, chromium_page(height=1400) as page:
        page.goto(f"{url}/support-chat")
        page.get_by_role("heading", name="Agent chat").wait_for(timeout=120_000)
        assert_page_found(page)
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

        # In a new conversation the customer asks for a person: it waits in the queue with the bot's draft.
        page.get_by_role("button", name="New conversation").click()
        time.sleep(1.0)
        box.fill("Can I talk to a real person about my refund?")
        box.press("Enter")
        page.get_by_text("Reason: customer asked for a human").wait_for(timeout=120_000)

        page.goto(f"{url}/support-queue")
        page.get_by_role("heading", name="Hand-off queue").wait_for(timeout=120_000)
        page.get_by_text("Can I talk to a real person about my refund?").first.wait_for(timeout=60_000)
        take = page.get_by_role("button", name="Take")
        expect(take).to_have_count(2, timeout=30_000)  # oldest first: mount everest, then this one
        take.nth(1).click()
        page.get_by_text("You took hand-off").wait_for(timeout=60_000)
        page.get_by_text("Bot's suggestion").wait_for(timeout=60_000)
        page.get_by_text("We refund within 5 working days").first.wait_for(timeout=30_000)
        page.get_by_role("button", name="Start from the suggestion").click()
        reply = settled(page.get_by_label("Your reply to the customer"), "We refund within 5 working days")
        reply.fill("Hello, this is Lena from support: your refund left us today.")
        time.sleep(1.0)
        screenshot(page, "support_queue_taken")
        page.get_by_role("button", name="Send reply").click()
        page.get_by_text("Reply sent.").wait_for(timeout=60_000)
        page.get_by_text("your refund left us today").first.wait_for(timeout=30_000)
        page.get_by_role("button", name="Resolve").click()
        page.get_by_text("resolved.", exact=False).first.wait_for(timeout=60_000)
        page.get_by_text("None taken. Take a waiting conversation below.").wait_for(timeout=30_000)
        assert page.get_by_text("how tall is mount everest").count() >= 1  # still waiting
        page.locator("[data-testid='stVegaLiteChart']").first.wait_for(timeout=60_000)
        time.sleep(1.5)
        screenshot(page, "support_queue_resolved")
