"""The Hand-off queue page in AppTest: a real hand-off from the bot, take, reply, resolve; roles; chart."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from apps.customer_service.bot import SupportBot
from apps.customer_service.handoff_queue import HandoffQueue
from apps.customer_service.storage import SupportStore
from apps.customer_service.ui import PAGES_DIR
from core.auth import Role, add_user, audit_events
from core.schema import migrate
from core.ui.auth import Viewer
from core.ui.shell import APP_SCRIPT, page_plan
from tests.apps.customer_service.bot_fixtures import calibrated_kb_dir, data_kb_dir  # noqa: F401
from tests.core.test_ui_auth import sign_in

QUESTION = "Can I talk to a real person about my refund?"


@pytest.fixture(autouse=True)
def support_only(monkeypatch):
    monkeypatch.setenv("AIGC_UI_APPS", "support")


@pytest.fixture
def handed_off(data_kb_dir, minilm) -> str:  # noqa: F811
    """A conversation the real bot handed off on the sample KB (the customer asked for a person)."""
    store = SupportStore()
    bot = SupportBot.from_dir(data_kb_dir, embedder=minilm)
    conversation = store.start_conversation(QUESTION, data_kb_dir, owner="web")
    reply = bot.answer(QUESTION)
    assert reply.handoff_reason == "asked_for_human" and reply.suggestion
    store.add_exchange(conversation, QUESTION, reply)
    return conversation


def open_queue(at: AppTest | None = None) -> AppTest:
    at = at or AppTest.from_file(APP_SCRIPT, default_timeout=180).run()
    at.switch_page(os.path.relpath(PAGES_DIR / "queue.py", Path(APP_SCRIPT).parent)).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def button(at: AppTest, label: str):
    [found] = [b for b in at.button if b.label == label]
    return found


def test_take_reply_resolve(handed_off):
    at = open_queue()
    assert [t.value for t in at.title] == ["Hand-off queue"]
    assert [(m.label, m.value) for m in at.metric] == [
        ("Waiting", "1"),
        ("Taken", "0"),
        ("Yours", "0"),
        ("Resolved", "0"),
    ]
    assert any(m.value == "Can I talk to a real person about my refund?" for m in at.markdown)
    caption = next(c.value for c in at.caption if c.value.startswith("customer asked for a human"))
    assert "waiting" in caption and "ret-03" in caption

    [case] = HandoffQueue(SupportStore()).waiting()
    at.button(key=f"queue_take_{case.id}").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.success[0].value == f"You took hand-off {case.id}."
    assert [(m.label, m.value) for m in at.metric][:3] == [("Waiting", "0"), ("Taken", "1"), ("Yours", "1")]
    # History, and the bot's draft with its cited sources beside the reply box.
    assert [m.name for m in at.chat_message] == ["user", "assistant"]
    texts = [m.value for m in at.markdown]
    assert "**Bot's suggestion**" in texts
    assert any(t.startswith("We refund within 5 working days") for t in texts)
    assert any(e.label.replace("\\", "").startswith("Source [ret-03] Refund timing") for e in at.expander)
    assert any(":orange-background[We refund within 5 working days" in t for t in texts)  # quoted part

    button(at, "Start from the suggestion").click().run()
    reply_box = at.text_area(key=f"queue_reply_{case.id}")
    assert reply_box.value.startswith("We refund within 5 working days")
    reply_box.input("Hello, I'm Lena from support: your refund was sent today and shows in 3 to 5 days.")
    button(at, "Send reply").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.success[0].value == "Reply sent."
    assert [m.name for m in at.chat_message] == ["user", "assistant", "human"]
    messages = SupportStore().messages(handed_off)
    assert messages[-1]["role"] == "agent" and messages[-1]["author"] == "local"
    assert messages[-1]["content"].startswith("Hello, I'm Lena from support")

    button(at, "Resolve").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.success[0].value == f"Hand-off {case.id} resolved."
    assert [(m.label, m.value) for m in at.metric] == [
        ("Waiting", "0"),
        ("Taken", "0"),
        ("Yours", "0"),
        ("Resolved", "1"),
    ]
    assert at.get("vega_lite_chart"), "the time-to-take / time-to-resolve chart"
    assert any("1 hand-offs, 1 taken, 1 resolved" in c.value for c in at.caption)
    assert [e["action"] for e in audit_events()][:2] == ["handoff_resolve", "handoff_take"]


def test_resolving_with_the_intent_the_agent_picked():
    """The agent picks the intent among the refresh's labels; nothing is pre-selected (no bot guess)."""
    from tests.apps.customer_service.test_handoff_queue import hand_off

    store = SupportStore()
    hand_off(store, "my money has not come back")  # the bot guessed "returns"
    queue = HandoffQueue(store)
    [case] = queue.waiting()
    queue.take(case.id, "local")
    at = open_queue()
    box = at.selectbox(key=f"queue_intent_{case.id}")
    assert box.label == "Intent (trains the intent model)" and box.value is None
    assert box.options[0] == "(not set)" and "refund_status" in box.options and "returns" not in box.options
    box.set_value("refund_status").run()
    button(at, "Resolve").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.success[0].value == f"Hand-off {case.id} resolved as refund_status."
    assert queue.get(case.id).intent == "refund_status"
    [event] = [e for e in audit_events() if e["action"] == "handoff_resolve"]
    assert event["details"]["intent"] == "refund_status"


def test_the_dashboard_shows_what_each_day_left_waiting():
    """The medians count only taken cases: a day with most cases untaken shows them waiting."""
    from tests.apps.customer_service.test_handoff_queue import hand_off

    store = SupportStore()
    for question in ("first", "second", "third", "fourth"):
        hand_off(store, question)
    HandoffQueue(store).take(HandoffQueue(store).waiting()[0].id, "ana")
    at = open_queue()
    assert len(at.get("vega_lite_chart")) == 2, "the medians chart and the taken / still waiting chart"
    [daily] = [d.value for d in at.dataframe if "handed off" in d.value.columns]  # not the sources table
    [day] = daily.to_dict("records")
    assert (day["handed off"], day["taken"], day["still waiting"], day["taken %"]) == (4, 1, 3, 25)
    assert any("4 hand-offs, 1 taken, 0 resolved, 3 still waiting" in c.value for c in at.caption)


def test_a_case_someone_else_took_meanwhile_leaves_the_list(handed_off):
    at = open_queue()
    [case] = HandoffQueue(SupportStore()).waiting()
    HandoffQueue(SupportStore()).take(case.id, "ben")  # another agent, a moment earlier
    at.button(key=f"queue_take_{case.id}").click().run()  # the rerun shows the queue as it is now
    assert not at.exception and not at.success
    assert "Nobody is waiting." in [c.value for c in at.caption]
    assert [(m.label, m.value) for m in at.metric][:3] == [("Waiting", "0"), ("Taken", "1"), ("Yours", "0")]
    assert HandoffQueue(SupportStore()).get(case.id).taken_by == "ben"


def test_the_page_is_for_agents_and_admins_not_analysts(handed_off):
    plans = {
        role: {url: ok for *_rest, url, _permission, ok in page_plan(Viewer("x", role, True))}
        for role in Role
    }
    assert {role.value: plan["support-queue"] for role, plan in plans.items()} == {
        "agent": True, "kb_admin": True, "analyst": False, "admin": True,
    }  # fmt: skip
    # A signed-in agent takes a case as themselves.
    migrate()
    add_user("ana", "agent", "ana-password")
    at = open_queue(sign_in(AppTest.from_file(APP_SCRIPT, default_timeout=180).run(), "ana", "ana-password"))
    [case] = HandoffQueue(SupportStore()).waiting()
    at.button(key=f"queue_take_{case.id}").click().run()
    assert HandoffQueue(SupportStore()).get(case.id).taken_by == "ana"
    assert ("handoff_take", "ana") in {(e["action"], e["actor"]) for e in audit_events()}


def test_a_taken_cases_question_is_listed_as_typed_not_as_markdown():
    from apps.customer_service.bot import Answer

    question = "**free** money at [my site](https://evil.example) ![x](https://evil.example/p.png)"
    store = SupportStore()
    conversation = store.start_conversation(question, owner="web")
    handoff = Answer(text="A person will answer.", sources=[], confidence=0.1, handoff=True,
                     handoff_reason="low_confidence")  # fmt: skip
    store.add_exchange(conversation, question, handoff)
    [case] = HandoffQueue(store).waiting()
    HandoffQueue(store).take(case.id, "local")
    at = open_queue()
    [label] = at.radio[0].options
    assert label.startswith(f"#{case.id} · ") and "https\\://evil.example" in label  # no autolink
    assert "\\*\\*free\\*\\*" in label and "\\[my site\\]" in label and "\\!\\[x\\]" in label
