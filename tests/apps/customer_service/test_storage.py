"""Conversation store on SQLite and (when reachable) PostgreSQL, and the feedback export."""

from __future__ import annotations

import csv
from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from apps.customer_service.bot import Answer, Source
from apps.customer_service.feedback import export_feedback
from apps.customer_service.handoff_queue import HandoffQueue
from apps.customer_service.sources import read_qa_file
from apps.customer_service.storage import SupportBase, SupportStore
from core.storage import create_engine


@pytest.fixture
def url(isolated_db_url: str) -> str:
    """``db_url``, isolated per test (see tests/conftest.py)."""
    return isolated_db_url


@pytest.fixture
def store(url) -> Iterator[SupportStore]:
    store = SupportStore(url)
    yield store
    store.engine.dispose()


def answer(text: str, handoff: bool = False, intent: str | None = "returns") -> Answer:
    cited = [] if handoff else [Source("ret-03", "Refunds", "https://x/ret-03", 0.91, "faq", 0.7)]
    related = [Source("ret-03", "Refunds", None, 0.91), Source("ret-01", "Return policy", None, 0.4)]
    return Answer(
        text=text,
        sources=cited,
        confidence=0.2 if handoff else 0.9,
        handoff=handoff,
        intent=intent,
        intent_confidence=0.8,
        latency_ms=12.5,
        ttft_ms=3.0,
        route="handoff" if handoff else "faq",
        query="refund",
        related=related,
    )


def test_asked_questions_per_kb_with_what_the_bot_retrieved(store, tmp_path):
    kb = tmp_path / "kb"
    kb.mkdir()
    conv = store.start_conversation("refunds", kb=kb)
    store.add_exchange(conv, "when do i get my money back", answer("Within 5 days."))
    store.add_exchange(conv, "what is the capital of peru", answer("I don't know", handoff=True))
    other = store.start_conversation("elsewhere", kb=tmp_path / "other-kb")
    store.add_exchange(other, "a question on another KB", answer("Yes."))
    spelled = store.asked_questions(tmp_path / "x" / ".." / "kb")  # the same KB however it is spelled
    assert [r["question"] for r in spelled] == ["when do i get my money back", "what is the capital of peru"]
    assert [r["route"] for r in spelled] == ["faq", "handoff"]
    assert spelled[0]["retrieved"] == ["ret-03", "ret-01"]  # cited first, then related, by rank
    assert spelled[0]["conversation_id"] == conv and spelled[0]["asked_at"] <= spelled[1]["asked_at"]
    assert len(store.asked_questions()) == 3
    assert (
        store.asked_questions(kb, since=spelled[1]["asked_at"])[0]["question"]
        == "what is the capital of peru"
    )
    assert store.asked_questions(tmp_path / "never-used") == []


def test_gap_candidates_and_corrections_are_per_kb(store, tmp_path):
    """A gap report of one KB reads neither the questions nor the corrections asked of another."""
    kb, other = tmp_path / "kb", tmp_path / "other-kb"
    kb.mkdir()
    mine = store.start_conversation("mine", kb=kb)
    theirs = store.start_conversation("theirs", kb=other)
    store.add_exchange(mine, "do you gift wrap", answer("I don't know", handoff=True))
    wrong = store.add_exchange(theirs, "can I return a mattress", answer("Yes, any time."))
    store.record_feedback(wrong, -1, "Opened mattresses cannot be returned.")
    store.add_exchange(theirs, "is there an app", answer("I don't know", handoff=True))
    spelled = tmp_path / "x" / ".." / "kb"  # the same KB however it is spelled
    assert [r["question"] for r in store.gap_candidates(kb=spelled)] == ["do you gift wrap"]
    assert [r["question"] for r in store.gap_candidates(kb=other)] == [
        "can I return a mattress",
        "is there an app",
    ]
    assert [r["question"] for r in store.gap_candidates(limit=1, kb=kb)] == [
        "do you gift wrap"
    ]  # newest of kb
    assert len(store.gap_candidates()) == 3
    assert store.corrections(kb=spelled) == []
    assert [c.question for c in store.corrections(kb=other)] == ["can I return a mattress"]
    assert len(store.corrections()) == 1
    assert store.gap_candidates(kb=tmp_path / "never-used") == []


def test_migration_matches_the_models(url, store):
    with store.engine.connect() as conn:
        only_ours = {
            "include_name": lambda name, kind, _parent: kind != "table" or name.startswith("support_")
        }
        diff = compare_metadata(MigrationContext.configure(conn, opts=only_ours), SupportBase.metadata)
    assert diff == []


def test_exchanges_are_stored_with_sources_intent_and_handoffs(store):
    conv = store.start_conversation("refund question", kb="kb")
    first = store.add_exchange(conv, "when do i get my money back", answer("Within 5 days."))
    second = store.add_exchange(conv, "what is the capital of peru", answer("I don't know", handoff=True))
    messages = store.messages(conv)
    assert [m["role"] for m in messages] == ["user", "assistant", "user", "assistant"]
    assert messages[1]["id"] == first and messages[3]["id"] == second
    assert messages[1]["content"] == "Within 5 days." and messages[1]["route"] == "faq"
    assert messages[1]["sources"][0] == {
        "id": "ret-03",
        "title": "Refunds",
        "url": "https://x/ret-03",
        "score": 0.91,
        "cited": True,
    }
    assert [s["cited"] for s in messages[1]["sources"]] == [True, False]
    assert messages[3]["handoff"] and not any(s["cited"] for s in messages[3]["sources"])
    [summary] = store.conversations()
    assert summary["intent"] == "returns" and summary["handoff"] and summary["messages"] == 4
    stats = store.stats()
    assert stats["answers"] == 2 and stats["handoffs"] == 1 and stats["open_handoffs"] == 1
    assert summary["state"] == "waiting"
    queue = HandoffQueue(store)
    [case] = queue.waiting()
    assert case.message_id == second and case.question == "what is the capital of peru"
    queue.take(case.id, "ana")
    queue.resolve(case.id, "ana")
    assert store.stats()["open_handoffs"] == 0 and store.conversations()[0]["state"] == "resolved"
    with pytest.raises(KeyError):
        store.add_exchange("nope", "q", answer("a"))


def test_control_characters_never_reach_the_database(store):
    """On SQLite and PostgreSQL (which refuses a NUL): a file, a paste or a request can carry them."""
    conv = store.start_conversation("refund\x00 question\x1b[2J")
    message = store.add_exchange(conv, "when do i get\x00 my money back\x07", answer("Within 5 days."))
    queue = HandoffQueue(store)
    handed = store.add_exchange(conv, "a person\x00 please", answer("I don't know", handoff=True))
    [case] = queue.waiting()
    queue.take(case.id, "ana")
    queue.reply(case.id, "ana", "Hello\x00, it is on its way.\x1b[31m")
    store.record_feedback(message, -1, "Five\x00 working days.", "ana")
    messages = store.messages(conv)
    assert [m["content"] for m in messages] == [
        "when do i get my money back",
        "Within 5 days.",
        "a person please",
        "I don't know",
        "Hello, it is on its way.[31m",
    ]
    assert messages[1]["feedback"]["corrected_answer"] == "Five working days."
    assert store.conversations()[0]["title"] == "refund question[2J" and handed


def test_feedback_is_one_row_per_answer_and_corrections_export_as_faq_rows(store, tmp_path):
    conv = store.start_conversation("c")
    good = store.add_exchange(conv, "do you take paypal", answer("Yes."))
    bad = store.add_exchange(conv, "can I return a mattress", answer("Yes, any time."))
    store.record_feedback(good, 1)
    store.record_feedback(bad, 1)
    store.record_feedback(bad, -1, "  Opened mattresses cannot be returned for hygiene reasons.  ")
    assert store.stats()["thumbs_up"] == 1 and store.stats()["thumbs_down"] == 1
    assert store.messages(conv)[3]["feedback"]["rating"] == -1
    with pytest.raises(ValueError, match="rating"):
        store.record_feedback(good, 0)
    with pytest.raises(ValueError, match="not a bot answer"):
        store.record_feedback(good - 1, 1)
    [correction] = store.corrections()
    assert correction.question == "can I return a mattress"
    assert correction.rejected_answer == "Yes, any time."

    out = tmp_path / "fb" / "corrections.csv"
    assert export_feedback(store, out) == 1
    with out.open(encoding="utf-8") as fh:
        [row] = list(csv.DictReader(fh))
    assert row["id"] == f"feedback-{bad}" and row["category"] == "returns"
    [entry] = read_qa_file(out)  # the export is a valid FAQ source
    assert entry.question == "can I return a mattress"
    assert entry.text == "Opened mattresses cannot be returned for hygiene reasons."
    assert export_feedback(store, tmp_path / "c.jsonl") == 1
    assert read_qa_file(tmp_path / "c.jsonl")[0].id == f"feedback-{bad}"
    with pytest.raises(ValueError, match="export format"):
        export_feedback(store, tmp_path / "c.xlsx")


def test_store_uses_the_default_database(tmp_path):
    store = SupportStore()
    assert store.engine.url.get_backend_name() == "sqlite"
    store.start_conversation("x")
    engine = create_engine()
    with engine.connect() as conn:
        assert conn.scalar(sa.text("select count(*) from support_conversations")) == 1
    engine.dispose()
    store.engine.dispose()


def test_support_0004_turns_old_handoff_rows_into_cases(url):
    """Before 0004 every handed-off answer had an 'open' row; after, one waiting case per conversation."""
    from core.schema import migrate

    migrate(url, target="support_0003")
    engine = create_engine(url)
    rows = [  # conversation c1: two open answers; c2: one resolved
        (1, "c1", 2, "open", "2026-12-01 09:00:00", None),
        (2, "c1", 4, "open", "2026-12-01 09:05:00", None),
        (3, "c2", 6, "resolved", "2026-12-01 10:00:00", "2026-12-01 11:00:00"),
    ]
    with engine.begin() as conn:
        for cid in ("c1", "c2"):
            conn.execute(
                sa.text(
                    "INSERT INTO support_conversations (id, title, kb, handoff, created_at, updated_at) "
                    "VALUES (:id, 't', '', true, '2026-12-01 08:00:00', '2026-12-01 08:00:00')"
                ),
                {"id": cid},
            )
        for position in range(1, 7):
            conn.execute(
                sa.text(
                    "INSERT INTO support_messages (id, conversation_id, position, role, content, handoff, "
                    "created_at) VALUES (:id, :cid, :position, :role, 'x', false, '2026-12-01 08:00:00')"
                ),
                {"id": position, "cid": "c1" if position <= 4 else "c2", "position": position,
                 "role": "user" if position % 2 else "assistant"},
            )  # fmt: skip
        for id_, cid, message_id, status, created, resolved in rows:
            conn.execute(
                sa.text(
                    "INSERT INTO support_handoffs (id, conversation_id, message_id, reason, status, "
                    "created_at, resolved_at) "
                    "VALUES (:id, :cid, :mid, 'low_confidence', :status, :created, :resolved)"
                ),
                {
                    "id": id_,
                    "cid": cid,
                    "mid": message_id,
                    "status": status,
                    "created": created,
                    "resolved": resolved,
                },
            )
    migrate(url)
    store = SupportStore(engine)
    queue = HandoffQueue(store)
    assert [(c.id, c.status) for c in queue.cases("all")] == [(3, "resolved"), (1, "waiting")]
    assert queue.get(1).handed_off_at.isoformat() == "2026-12-01T09:00:00+00:00"
    assert queue.conversation_state("c1") == "waiting" and queue.conversation_state("c2") == "resolved"
    queue.take(1, "ana")  # the migrated case works like a new one
    # ... and a second open case in one conversation is refused by the database itself.
    with pytest.raises(sa.exc.IntegrityError), engine.begin() as conn:
        conn.execute(sa.text("UPDATE support_handoffs SET status = 'waiting' WHERE id = 3"))
        conn.execute(sa.text("UPDATE support_handoffs SET conversation_id = 'c1' WHERE id = 3"))
    engine.dispose()


def test_support_0005_adds_the_agents_intent_to_existing_cases(url):
    """A support_0004 database with a resolved case upgrades: old cases have no intent, new ones get one."""
    from core.schema import migrate

    migrate(url, target="support_0004")
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO support_conversations (id, title, kb, handoff, created_at, updated_at) "
                "VALUES ('c1', 't', '', true, '2026-12-01 08:00:00', '2026-12-01 08:00:00')"
            )
        )
        for position, role in ((0, "user"), (1, "assistant")):
            conn.execute(
                sa.text(
                    "INSERT INTO support_messages (conversation_id, position, role, content, handoff, "
                    "created_at) VALUES ('c1', :position, :role, 'x', false, '2026-12-01 08:00:00')"
                ),
                {"position": position, "role": role},
            )
        conn.execute(
            sa.text(
                "INSERT INTO support_handoffs (conversation_id, message_id, reason, status, handed_off_at, "
                "taken_at, taken_by, resolved_at, resolved_by, updated_at, suggestion_sources) SELECT "
                "'c1', id, 'low_confidence', 'resolved', '2026-12-01 08:00:00', '2026-12-01 08:01:00', "
                "'ana', '2026-12-01 08:02:00', 'ana', '2026-12-01 08:02:00', '[]' "
                "FROM support_messages WHERE position = 1"
            )
        )
        assert "intent" not in {c["name"] for c in sa.inspect(conn).get_columns("support_handoffs")}
    migrate(url)
    store = SupportStore(engine)
    queue = HandoffQueue(store)
    assert [(c.status, c.resolved_by, c.intent) for c in queue.cases("all")] == [("resolved", "ana", None)]
    store.add_exchange("c1", "where is my refund", answer("Handing over.", handoff=True))
    [case] = queue.waiting()
    queue.take(case.id, "ana")
    assert queue.resolve(case.id, "ana", intent="refund_status").intent == "refund_status"
    engine.dispose()
