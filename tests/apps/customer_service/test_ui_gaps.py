"""The Knowledge gaps page in Streamlit's AppTest: find gaps in the stored hand-offs, see the clusters and
their sizes, edit and approve a draft (the bot then answers with the new entry), reject another."""

from __future__ import annotations

import sqlite3
from datetime import date

import pytest
from sqlalchemy.exc import OperationalError

from apps.customer_service.bot import SupportBot
from apps.customer_service.storage import SupportStore
from core.auth import AuditAction, audit_events
from core.storage import StorageError
from tests.apps.customer_service.bot_fixtures import calibrated_kb_dir, data_kb_dir  # noqa: F401
from tests.apps.customer_service.test_ui import open_page

GIFT = ["Do you offer gift wrapping?", "Can you wrap my present for me?", "Will you wrap a present?"]
APP = ["Do you have a mobile app?", "Is there an app for iPhone?"]
OTHER_KB = ["Can I pay with bitcoin?", "Do you accept crypto payments?", "what is the capital of australia"]
WRAP_ANSWER = "Yes. Tick Gift wrap at checkout: we wrap each item in recycled paper for 3 EUR."


@pytest.fixture(autouse=True)
def support_only(monkeypatch):
    monkeypatch.setenv("AIGC_UI_APPS", "support")


def test_without_a_report_the_page_says_what_to_do(data_kb_dir):  # noqa: F811
    at = open_page("gaps.py")
    assert "press **Find gaps**" in at.info[0].value


def test_gaps_are_found_approved_into_the_kb_and_rejected(data_kb_dir, minilm):  # noqa: F811
    store = SupportStore()
    bot = SupportBot.from_dir(data_kb_dir, embedder=minilm)
    for question in GIFT + APP:
        store.add_exchange(store.start_conversation(question, kb=data_kb_dir), question, bot.answer(question))
    for question in OTHER_KB:  # asked of another KB: no gaps of this one
        conversation = store.start_conversation(question, kb=data_kb_dir.parent / "other-kb")
        store.add_exchange(conversation, question, bot.answer(question))

    at = open_page("gaps.py")
    at.toggle(key="gaps_gen").set_value(False)  # quote passages: no answer model needed here
    [find] = [b for b in at.button if b.label == "Find gaps"]
    find.click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, at.error[0].value if at.error else ""
    assert [m.value for m in at.metric] == ["5", "5", "2", "0"]
    assert at.get("vega_lite_chart"), "the cluster-size chart"
    gift, app = SupportStore().gap_drafts(report_id=SupportStore().gap_reports()[0]["id"])
    assert sorted(gift["questions"]) == sorted(GIFT) and gift["draft_answer"] is None
    labels = [e.label for e in at.expander]
    assert any(label.startswith("1. ") and "3 questions · pending" in label for label in labels)

    at.text_area(key=f"gap_a_{gift['id']}").input(WRAP_ANSWER)
    at.button(key=f"gap_ok_{gift['id']}").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, at.error[0].value if at.error else ""
    assert f"Added gap-{gift['id']}" in at.success[0].value
    assert store.gap_draft(gift["id"])["status"] == "approved"
    [event] = audit_events(action=AuditAction.KB_GAP_APPROVE)
    assert event["details"] == {"draft": gift["id"], "edited": True, "entry": f"gap-{gift['id']}"}

    reply = SupportBot.from_dir(data_kb_dir, embedder=minilm).answer("do you do gift wrapping")
    assert [s.id for s in reply.sources] == [f"gap-{gift['id']}"] and WRAP_ANSWER in reply.text

    at.button(key=f"gap_no_{app['id']}").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert store.gap_draft(app["id"])["status"] == "rejected"
    assert "Rejected the draft of cluster 2." in at.success[0].value
    assert any("3 questions · approved" in e.label for e in at.expander)


def test_a_date_with_a_questions_file_is_refused_as_the_cli_does(data_kb_dir):  # noqa: F811
    at = open_page("gaps.py")
    at.date_input(key="gaps_since").set_value(date(2026, 12, 1))
    at.file_uploader(key="gaps_file").set_value(
        ("q.csv", ("question\n" + "\n".join(GIFT)).encode(), "text/csv")
    )
    at.toggle(key="gaps_gen").set_value(False)
    [find] = [b for b in at.button if b.label == "Find gaps"]
    find.click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert [e.value.replace("\\", "") for e in at.error] == [  # escaped Markdown: as the page shows it
        "The date applies to stored questions, not to a questions file: clear the date to use the file, "
        "or remove the file to report on stored questions since that date."
    ]
    assert SupportStore().gap_reports() == []  # nothing was run


@pytest.mark.parametrize(
    "failure",
    [
        StorageError("Cannot connect to database postgresql://x:***@db/aigc: timeout.\nCheck the server."),
        OperationalError("SELECT ...", {}, sqlite3.OperationalError("database is locked")),
    ],
)
def test_a_database_error_while_finding_gaps_is_one_line_not_a_traceback(data_kb_dir, monkeypatch, failure):  # noqa: F811
    at = open_page("gaps.py")

    def broken(*_args, **_kwargs):
        raise failure

    monkeypatch.setattr(SupportStore, "gap_candidates", broken)
    at.toggle(key="gaps_gen").set_value(False)
    [find] = [b for b in at.button if b.label == "Find gaps"]
    find.click().run()
    assert not at.exception, [e.value for e in at.exception]
    [error] = [e.value for e in at.error]
    assert error.startswith("No gap report: the database failed. ") and "\n" not in error
    assert ("timeout. Check the server." in error) or error.endswith("database is locked")
