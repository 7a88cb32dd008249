"""The hand-off queue on SQLite and PostgreSQL: cases, take/reply/release/resolve, one winner, metrics."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest

from apps.customer_service.bot import Answer, Source
from apps.customer_service.handoff import HandoffError, InvalidTransition, NotYourCase
from apps.customer_service.handoff_queue import HandoffQueue, daily_metrics, format_age
from apps.customer_service.storage import SupportStore
from core.auth import audit_events
from core.storage import utcnow
from tests.apps.customer_service.test_storage import answer

AGENTS = 8


class Clock:
    """A settable clock (timestamps still go through the database)."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@pytest.fixture
def store(isolated_db_url) -> Iterator[SupportStore]:
    store = SupportStore(isolated_db_url)
    yield store
    store.engine.dispose()


def handoff(reason: str = "low_confidence", suggestion: str = "", text: str = "I don't know") -> Answer:
    reply = answer(text, handoff=True)
    reply.handoff_reason = reason
    reply.suggestion = suggestion
    reply.suggestion_sources = [Source("ret-03", "Refunds", None, 0.91)] if suggestion else []
    return reply


def hand_off(store: SupportStore, question: str, reason: str = "low_confidence", **kw) -> str:
    conv = store.start_conversation(question, owner="web")
    store.add_exchange(conv, question, handoff(reason, **kw))
    return conv


def test_a_handoff_waits_with_its_question_reason_sources_and_suggestion(store):
    conv = hand_off(store, "when is my refund coming", "asked_for_human", suggestion="Within 5 days [ret-03]")
    store.add_exchange(conv, "hello??", handoff("low_confidence"))  # joins the open case
    queue = HandoffQueue(store)
    [case] = queue.waiting()
    assert (case.conversation_id, case.question, case.reason, case.status) == (
        conv, "when is my refund coming", "asked_for_human", "waiting",
    )  # fmt: skip
    assert case.reason_label == "customer asked for a human" and case.suggestion == "Within 5 days [ret-03]"
    assert [(s["id"], s["suggested"]) for s in case.sources] == [("ret-03", True), ("ret-01", False)]
    assert case.taken_by is None and case.handed_off_at.tzinfo is not None
    assert queue.conversation_state(conv) == "waiting" and queue.counts() == {
        "waiting": 1, "taken": 0, "resolved": 0,
    }  # fmt: skip
    assert case.to_json()["handed_off_at"].endswith("+00:00")


def test_waiting_cases_are_listed_oldest_first(store):
    clock = Clock(datetime(2026, 12, 1, 9, tzinfo=UTC))
    for question in ("first", "second", "third"):
        hand_off(store, question)
    queue = HandoffQueue(store, clock)
    assert [c.question for c in queue.waiting()] == ["first", "second", "third"]
    queue.take(queue.waiting()[0].id, "ana")
    assert [c.question for c in queue.waiting()] == ["second", "third"]
    assert [c.question for c in queue.cases("taken", taken_by="ana")] == ["first"]
    with pytest.raises(ValueError, match="unknown hand-off status 'lost'"):
        queue.cases("lost")


def test_take_reply_resolve_with_timestamps_and_audit(store):
    clock = Clock(utcnow())  # the hand-off is stamped by the store's own clock
    conv = hand_off(store, "my parcel is lost")
    queue = HandoffQueue(store, clock)
    [case] = queue.waiting()
    clock.advance(minutes=3)
    taken = queue.take(case.id, "ana")
    assert (taken.status, taken.taken_by, taken.taken_at) == ("taken", "ana", clock.now)
    clock.advance(minutes=2)
    message_id = queue.reply(case.id, "ana", "  We have sent a new parcel today.  ")
    clock.advance(minutes=1)
    done = queue.resolve(case.id, "ana")
    assert (done.status, done.resolved_by, done.resolved_at) == ("resolved", "ana", clock.now)
    assert queue.conversation_state(conv) == "resolved"
    messages = store.messages(conv)
    assert [m["role"] for m in messages] == ["user", "assistant", "agent"]
    expected = {"id": message_id, "content": "We have sent a new parcel today.", "author": "ana"}
    assert messages[-1].items() >= expected.items()
    events = {e["action"]: e for e in audit_events(engine=store.engine)}
    assert set(events) == {"handoff_take", "handoff_resolve"}
    assert (
        events["handoff_take"]["actor"] == "ana" and events["handoff_take"]["target"] == f"handoff:{case.id}"
    )
    assert 179 <= events["handoff_take"]["details"]["seconds_since_handoff"] <= 240
    assert events["handoff_resolve"]["details"]["conversation_id"] == conv


def test_invalid_actions_are_refused_clearly_and_change_nothing(store):
    hand_off(store, "where is my order")
    queue = HandoffQueue(store)
    [case] = queue.waiting()
    with pytest.raises(InvalidTransition, match=f"cannot resolve hand-off {case.id}: it is waiting"):
        queue.resolve(case.id, "ana")
    with pytest.raises(InvalidTransition, match="cannot reply to .*: it is waiting \\(take it first\\)"):
        queue.reply(case.id, "ana", "hi")
    queue.take(case.id, "ana")
    with pytest.raises(InvalidTransition, match="it is taken by ana \\(another agent is on it\\)"):
        queue.take(case.id, "ben")
    with pytest.raises(NotYourCase, match="ana has taken it; only they \\(or an admin\\) can"):
        queue.resolve(case.id, "ben")
    with pytest.raises(NotYourCase):
        queue.reply(case.id, "ben", "hello")
    with pytest.raises(HandoffError, match="the reply is empty"):
        queue.reply(case.id, "ana", "   ")
    with pytest.raises(HandoffError, match="the reply is empty"):  # control characters only
        queue.reply(case.id, "ana", "\x00\x01 \x1b")
    with pytest.raises(KeyError, match="no hand-off 999"):
        queue.take(999, "ana")
    assert queue.get(case.id).status == "taken" and queue.get(case.id).taken_by == "ana"
    assert [e["action"] for e in audit_events(engine=store.engine)] == ["handoff_take"]
    # An admin may resolve another agent's case; the audit names whose it was.
    queue.resolve(case.id, "lead", override=True)
    assert audit_events(engine=store.engine)[0]["details"]["taken_by"] == "ana"
    with pytest.raises(InvalidTransition, match="it is resolved \\(it is closed already\\)"):
        queue.resolve(case.id, "lead", override=True)


def test_the_resolving_agent_says_which_intent_it_was_stored_and_audited(store):
    """The agent's label is kept with the case; the bot's own guess (``returns`` here) is no label."""
    hand_off(store, "my refund has not arrived")
    queue = HandoffQueue(store)
    [case] = queue.waiting()
    assert case.intent is None
    queue.take(case.id, "ana")
    done = queue.resolve(case.id, "ana", intent="  refund_status ")
    assert done.intent == "refund_status" and queue.get(case.id).intent == "refund_status"
    assert done.to_json()["intent"] == "refund_status"
    [event] = [e for e in audit_events(engine=store.engine) if e["action"] == "handoff_resolve"]
    assert event["details"]["intent"] == "refund_status"
    # Resolved without one: no label, and none in the audit entry.
    hand_off(store, "something else")
    [other] = queue.waiting()
    queue.take(other.id, "ana")
    assert queue.resolve(other.id, "ana").intent is None
    assert "intent" not in audit_events(engine=store.engine)[0]["details"]


@pytest.mark.parametrize(
    ("intent", "message"),
    [("   ", "^the intent is empty: give an intent label, or leave it out$"),
     ("x" * 129, "^the intent has 129 characters; at most 128 are stored$")],
)  # fmt: skip
def test_a_bad_intent_is_refused_in_one_line_and_the_case_stays_taken(store, intent, message):
    hand_off(store, "where is my order")
    queue = HandoffQueue(store)
    [case] = queue.waiting()
    queue.take(case.id, "ana")
    with pytest.raises(HandoffError, match=message):
        queue.resolve(case.id, "ana", intent=intent)
    assert queue.get(case.id).status == "taken" and queue.get(case.id).intent is None
    assert [e["action"] for e in audit_events(engine=store.engine)] == ["handoff_take"]


def test_release_puts_it_back_and_a_resolved_conversation_can_be_handed_off_again(store):
    conv = hand_off(store, "damaged item")
    queue = HandoffQueue(store)
    [case] = queue.waiting()
    queue.take(case.id, "ana")
    released = queue.release(case.id, "ana")
    assert (released.status, released.taken_by, released.taken_at) == ("waiting", None, None)
    queue.take(case.id, "ben")
    queue.resolve(case.id, "ben")
    store.add_exchange(conv, "it is still broken", handoff("asked_for_human"))
    [again] = queue.waiting()
    assert (
        again.id != case.id and again.question == "it is still broken" and again.reason == "asked_for_human"
    )
    assert [c.id for c in queue.cases("all")] == [again.id, case.id]
    assert store.stats()["handoffs"] == 2 and store.stats()["open_handoffs"] == 1


def test_two_agents_taking_at_once_exactly_one_wins(store):
    """Eight agents press Take on the same case at the same moment, each on its own connection."""
    hand_off(store, "refund please")
    [case] = HandoffQueue(store).waiting()
    start = threading.Barrier(AGENTS)
    won, lost, errors = [], [], []

    def take(agent: str) -> None:
        queue = HandoffQueue(store)
        start.wait()
        try:
            queue.take(case.id, agent)
            won.append(agent)
        except InvalidTransition as err:
            lost.append(str(err))
        except Exception as err:  # noqa: BLE001 - any other failure fails the test below
            errors.append(repr(err))

    threads = [threading.Thread(target=take, args=(f"agent-{i}",)) for i in range(AGENTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == [] and len(won) == 1 and len(lost) == AGENTS - 1
    assert all(f"it is taken by {won[0]}" in message for message in lost)
    assert HandoffQueue(store).get(case.id).taken_by == won[0]
    takes = [e for e in audit_events(engine=store.engine) if e["action"] == "handoff_take"]
    assert [e["actor"] for e in takes] == won


def test_metrics_per_day_from_the_stored_timestamps(store):
    clock = Clock(datetime(2026, 12, 1, 9, tzinfo=UTC))
    queue = HandoffQueue(store, clock)
    # Day 1: taken after 2, 4 and 10 minutes, resolved 10, 20 (and never) minutes after hand-off.
    ids = []
    for i, (take_after, resolve_after) in enumerate([(2, 10), (4, 20), (10, None)]):
        store_at(store, clock, f"q{i}")
        ids.append((queue.waiting()[-1].id, take_after, resolve_after))
    start = clock.now
    for case_id, take_after, _resolve_after in ids:
        clock.now = start + timedelta(minutes=take_after)
        queue.take(case_id, "ana")
    for case_id, _take_after, resolve_after in ids:
        if resolve_after is not None:
            clock.now = start + timedelta(minutes=resolve_after)
            queue.resolve(case_id, "ana")
    # Day 2: one waiting case.
    clock.now = datetime(2026, 12, 2, 9, tzinfo=UTC)
    store_at(store, clock, "q3")
    frame = queue.metrics(days=7)
    rows = frame.to_dict("records")
    assert [str(r["day"]) for r in rows] == ["2026-12-01", "2026-12-02"]
    expected = {
        "handed_off": 3,
        "taken": 3,
        "resolved": 2,
        "median_take_min": 4.0,
        "median_resolve_min": 15.0,
    }
    assert rows[0].items() >= expected.items()
    assert rows[0]["waiting"] == 0 and rows[0]["taken_share"] == 1.0
    assert rows[1]["handed_off"] == 1 and rows[1]["taken"] == 0 and pd.isna(rows[1]["median_take_min"])
    assert rows[1]["waiting"] == 1 and rows[1]["taken_share"] == 0.0
    assert queue.metrics(days=1, now=datetime(2026, 12, 2, 12, tzinfo=UTC))["handed_off"].tolist() == [1]


def test_a_day_whose_cases_mostly_still_wait_shows_them_beside_its_median(store):
    """The median counts only taken cases: a day that left most cases waiting must not look good."""
    clock = Clock(datetime(2026, 12, 1, 9, tzinfo=UTC))
    queue = HandoffQueue(store, clock)
    for i in range(4):  # good day: all four taken after 30 minutes
        store_at(store, clock, f"good {i}")
    clock.advance(minutes=30)
    for case in queue.waiting():
        queue.take(case.id, "ana")
    clock.now = datetime(2026, 12, 2, 9, tzinfo=UTC)  # bad day: one taken after 2 minutes, three never
    for i in range(4):
        store_at(store, clock, f"bad {i}")
    clock.advance(minutes=2)
    first, second, *_ = queue.waiting()
    queue.take(first.id, "ana")
    queue.take(second.id, "ben")
    queue.release(second.id, "ben")  # put back: waiting again, not taken
    good, bad = queue.metrics(days=7, now=clock.now).to_dict("records")
    assert (good["median_take_min"], good["waiting"], good["taken_share"]) == (30.0, 0, 1.0)
    assert (bad["median_take_min"], bad["waiting"], bad["taken_share"]) == (2.0, 3, 0.25)
    assert bad["taken"] + bad["waiting"] == bad["handed_off"] == 4


def store_at(store: SupportStore, clock: Clock, question: str) -> None:
    """Hand off with ``handed_off_at`` = the clock's time (written through the store, then set)."""
    import sqlalchemy as sa

    from apps.customer_service.storage import Handoff
    from core.storage import session_scope

    hand_off(store, question)
    with session_scope(store.engine) as session:
        latest = session.scalar(sa.select(sa.func.max(Handoff.id)))
        session.execute(sa.update(Handoff).where(Handoff.id == latest).values(handed_off_at=clock.now))


def test_metrics_with_the_real_clock(store):
    hand_off(store, "real time")
    queue = HandoffQueue(store)
    [case] = queue.waiting()
    taken = queue.take(case.id, "ana")
    done = queue.resolve(case.id, "ana")
    [row] = queue.metrics().to_dict("records")
    expected_take = (taken.taken_at - case.handed_off_at).total_seconds() / 60
    assert row["median_take_min"] == pytest.approx(expected_take, abs=0.01) and row["median_take_min"] >= 0
    assert row["median_resolve_min"] >= row["median_take_min"] and done.resolved_at >= taken.taken_at


def test_daily_metrics_of_nothing_and_ages():
    assert daily_metrics([]).empty and list(daily_metrics([]).columns)[0] == "day"
    assert list(daily_metrics([]).columns)[-2:] == ["waiting", "taken_share"]
    assert [format_age(timedelta(seconds=s)) for s in (42, 720, 3 * 3600 + 300, 2 * 86400 + 4 * 3600)] == [
        "42 s", "12 min", "3 h 05 min", "2 d 04 h",
    ]  # fmt: skip
