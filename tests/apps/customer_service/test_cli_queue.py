"""`aigc support queue|take|reply|release|resolve|queue-stats` as typed; refusals are one line, exit 2."""

from __future__ import annotations

import json

import pytest

from apps.customer_service.storage import SupportStore
from core.auth import audit_events
from core.auth.cli import cli_actor
from tests.apps.customer_service.test_handoff_queue import handoff
from tests.cli_run import assert_one_line_error, run_aigc


def test_queue_take_reply_resolve_from_the_terminal(tmp_path):
    store = SupportStore()
    conversation = store.start_conversation("where is my parcel")
    store.add_exchange(
        conversation, "where is my parcel, I want a human", handoff("asked_for_human", "See [x]")
    )
    listed = run_aigc("support", "queue", "--json")
    assert listed.code == 0, listed.stderr
    [case] = [json.loads(line) for line in listed.stdout.splitlines()]
    assert case["question"] == "where is my parcel, I want a human" and case["reason"] == "asked_for_human"
    assert case["status"] == "waiting" and case["suggestion"] == "See [x]"

    took = run_aigc("support", "take", str(case["id"]))
    assert (
        took.code == 0
        and f"Took hand-off {case['id']}" in took.stderr
        and "Bot's suggestion: See [x]" in took.stderr
    )
    again = run_aigc("support", "take", str(case["id"]))
    assert again.code == 2 and again.error_lines == [
        f"error: cannot take hand-off {case['id']}: it is taken by {cli_actor()} (another agent is on it)"
    ]
    reply_file = tmp_path / "reply.txt"
    reply_file.write_text("Your parcel arrives tomorrow.\n", encoding="utf-8")
    assert run_aigc("support", "reply", str(case["id"]), "--file", str(reply_file)).code == 0
    assert store.messages(conversation)[-1]["content"] == "Your parcel arrives tomorrow."
    assert run_aigc("support", "reply", str(case["id"])).error_lines == [
        "error: give the answer as TEXT or with --file, not both"
    ]
    done = run_aigc("support", "resolve", str(case["id"]), "--json")
    assert done.code == 0 and json.loads(done.stdout)["status"] == "resolved"
    assert run_aigc("support", "queue").stderr.strip() == "No waiting hand-offs."
    stats = json.loads(run_aigc("support", "queue-stats", "--json").stdout)
    assert stats["counts"] == {"waiting": 0, "taken": 0, "resolved": 1} and stats["days"][0]["resolved"] == 1
    assert {"handoff_take", "handoff_resolve"} <= {
        e["action"] for e in audit_events() if e["actor"] == cli_actor()
    }


def test_resolve_says_which_intent_the_question_was():
    store = SupportStore()
    store.add_exchange(store.start_conversation("q"), "my refund is late", handoff())
    assert run_aigc("support", "take", "1").code == 0
    assert_one_line_error(run_aigc("support", "resolve", "1", "--intent", "  "), "the intent is empty")
    assert_one_line_error(
        run_aigc("support", "resolve", "1", "--intent", "x" * 200),
        "the intent has 200 characters; at most 128",
    )
    done = run_aigc("support", "resolve", "1", "--intent", "refund_status")
    assert done.code == 0 and "Resolved hand-off 1 (intent refund_status)." in done.stderr
    [case] = [
        json.loads(line)
        for line in run_aigc("support", "queue", "--status", "all", "--json").stdout.splitlines()
    ]
    assert (case["status"], case["intent"]) == ("resolved", "refund_status")
    [event] = [e for e in audit_events() if e["action"] == "handoff_resolve"]
    assert event["details"]["intent"] == "refund_status" and event["actor"] == cli_actor()


def test_queue_stats_show_what_each_day_left_waiting(wide_output):
    """Medians count only taken cases, so each day also says how many still wait and the share taken."""
    store = SupportStore()
    for question in ("first", "second"):
        store.add_exchange(store.start_conversation(question), question, handoff())
    assert run_aigc("support", "take", "1").code == 0
    stats = json.loads(run_aigc("support", "queue-stats", "--json").stdout)
    [day] = stats["days"]
    assert {"day", "handed_off", "taken", "resolved", "median_take_min", "median_resolve_min"} <= set(day)
    assert (day["handed_off"], day["taken"], day["waiting"], day["taken_share"]) == (2, 1, 1, 0.5)
    text = run_aigc("support", "queue-stats")
    assert text.code == 0, text.stderr
    lines = text.stdout.splitlines()
    [header] = [[c.strip() for c in line.split("┃")[1:-1]] for line in lines if line.count("┃") == 9]
    [row] = [[c.strip() for c in line.split("│")[1:-1]] for line in lines if line.count("│") == 9]
    assert header[1:5] == ["handed off", "taken", "still waiting", "taken %"]
    assert row[1:5] == ["2", "1", "1", "50%"]
    assert "Medians count only the cases taken" in text.stderr


def test_refusals_are_one_line_with_exit_code_2():
    assert run_aigc("support", "take", "41").error_lines == ["error: no hand-off 41"]
    assert run_aigc("support", "queue", "--status", "lost").error_lines == [
        "error: unknown hand-off status 'lost'; choose one of waiting, taken, resolved, open, all"
    ]
    store = SupportStore()
    store.add_exchange(store.start_conversation("q"), "q", handoff())
    assert run_aigc("support", "resolve", "1").error_lines == [
        "error: cannot resolve hand-off 1: it is waiting (take it first, answer, then resolve it)"
    ]
    deliveries = run_aigc("support", "deliveries")
    assert deliveries.code == 0 and "0 pending, 0 delivered, 0 dead" in deliveries.stderr


def test_the_queue_table_prints_a_customers_brackets_as_typed():
    """A question is the customer's text: rich markup in it is neither obeyed nor a crash."""
    store = SupportStore()
    questions = [
        "my card [/b] was declined",
        "[bold red]URGENT[/] refund [link=https://evil.example]now[/link]",
    ]
    for question in questions:
        store.add_exchange(store.start_conversation(question), question, handoff())
    listed = run_aigc("support", "queue", "--status", "all")
    assert listed.code == 0, listed.stderr
    # the question column's pieces, in order (a narrow table folds a long cell over lines)
    cells = [line.split("│")[5] for line in listed.stdout.splitlines() if line.count("│") == 7]
    shown = "".join("".join(cells).split())
    for question in questions:
        assert "".join(question.split()) in shown


@pytest.mark.parametrize(
    "args",
    [
        ("take", "99999999999999999999"),
        ("resolve", "99999999999999999999"),
        ("queue", "--limit", "99999999999999999999"),
        ("queue-stats", "--days", "1000000000"),
        ("deliveries", "--retry", "99999999999999999999"),
        ("deliveries", "--limit", "0"),
    ],
)
def test_numbers_no_database_or_date_holds_are_refused_by_the_option(args):
    """They used to reach SQLite or timedelta and end in an OverflowError traceback (exit 1)."""
    result = run_aigc("support", *args)
    assert result.code == 2 and "Traceback" not in result.stderr, result.stderr[-2000:]
    assert "Invalid value" in result.stderr and "Overflow" not in result.stderr


def test_a_reply_file_that_is_not_utf8_names_the_file_and_line(tmp_path):
    path = tmp_path / "reply.txt"
    path.write_bytes("Hallo,\nIhre Rückerstattung ist unterwegs.".encode("latin-1"))
    assert_one_line_error(
        run_aigc("support", "reply", "1", "--file", str(path)), str(path), "line 2", "UTF-8"
    )
    assert_one_line_error(run_aigc("support", "reply", "1", "--file", str(tmp_path)), str(tmp_path), "folder")
