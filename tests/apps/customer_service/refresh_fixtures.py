"""Data for the refresh tests: two intents a tiny encoder learns in seconds, pairs, a store with feedback.

The two intents use disjoint words ("parcel" / "refund"), so the tiny random BERT of
``tests/conftest.py`` separates them after three short epochs (held-out accuracy 1.0 on a quiet
machine), and the same utterances with the labels swapped give a model that is wrong on almost
every held-out one: a real "worse" candidate.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import sqlalchemy as sa

from apps.customer_service.bot import Answer, Source
from apps.customer_service.gap_review import entry_id, kb_key
from apps.customer_service.storage import GapDraft, GapReport, Handoff, Message, SupportStore
from core.storage import session_scope

TRACK = [
    "where is my parcel", "track my parcel please", "parcel tracking link", "my parcel has not arrived",
    "when will the parcel arrive", "parcel status", "is my parcel on the way", "find my parcel",
    "parcel delivery date", "lost parcel where", "parcel still not here", "track parcel number",
    "parcel location", "how far is my parcel", "parcel shipped yet", "parcel tracking update",
]  # fmt: skip
REFUND = [
    "refund my money", "i want a refund", "refund status please", "when do i get my refund",
    "money back refund", "refund not received", "refund to my card", "how long does a refund take",
    "refund for my order", "request a refund", "refund still missing", "refund amount wrong",
    "get refund now", "refund timing", "refund was denied", "refund progress",
]  # fmt: skip
PAIRS = [
    ("How long does shipping take?", "Standard shipping takes 3 to 5 working days."),
    ("Can I return a sale item?", "Yes, sale items can be returned within 30 days."),
    ("Do you ship to Canada?", "Yes, we ship to Canada; duties are paid on delivery."),
    ("How do I reset my password?", "Click Forgot password on the sign-in page and follow the email."),
    ("Where is my refund?", "Refunds reach your card 5 to 10 days after we receive the return."),
    ("Can I change my address?", "You can change the address until the order ships, under Orders."),
    ("Do you sell gift cards?", "Yes, gift cards from 10 to 200 euros are sold online."),
    ("Is there a student discount?", "Students get 10 percent off with a valid student card."),
]
#: Settings that make a refresh take seconds: the tiny models, short training, short answers.
FAST_INTENTS = {"epochs": 3, "batch_size": 4, "lr": 5e-3, "head_lr": 0.1, "patience": 100}


def write_intents(path: Path, swap: bool = False) -> Path:
    """The two-intent CSV (``swap``: every label replaced by the other one, a mislabelled set)."""
    labels = ("refund_status", "track_order") if swap else ("track_order", "refund_status")
    with path.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["text", "label"])
        writer.writerows([(t, labels[0]) for t in TRACK] + [(t, labels[1]) for t in REFUND])
    return path


def write_pairs(path: Path, pairs: list[tuple[str, str]] = PAIRS) -> Path:
    """Question-answer pairs as JSON Lines."""
    path.write_text("".join(json.dumps({"question": q, "answer": a}) + "\n" for q, a in pairs), "utf-8")
    return path


def refresh_yaml(
    path: Path, intents: Path, encoder: Path, *, pairs: Path | None = None, lm: Path | None = None
) -> Path:
    """A config file with a fast ``refresh:`` section (``--config`` of ``aigc support refresh``)."""
    section = {
        "intents_data": str(intents),
        "encoder": str(encoder),
        "heldout_fraction": 0.25,
        "min_pairs": 3,
        "max_new_tokens": 4,
        "intent_training": {**FAST_INTENTS, "show_progress_bar": False},
        "answer_training": {"epochs": 1, "show_progress_bar": False},
    }
    if pairs is not None:
        section["pairs_data"] = str(pairs)
    if lm is not None:
        section["answer_model"] = str(lm)
    path.write_text(json.dumps({"refresh": section}), encoding="utf-8")  # JSON is YAML
    return path


def answer(text: str, handoff: bool = False, intent: str | None = "track_order") -> Answer:
    """A bot answer as the store records it (no model needed)."""
    sources = [] if handoff else [Source("faq-1", "Tracking", None, 0.9, "faq", 0.7)]
    return Answer(text=text, sources=sources, confidence=0.2 if handoff else 0.9, handoff=handoff,
                  intent=intent, intent_confidence=0.8, route="handoff" if handoff else "faq")  # fmt: skip


def add_correction(store: SupportStore, question: str, corrected: str) -> int:
    """One exchange rated down with the agent's corrected answer; the answer's message id."""
    conversation = store.start_conversation(question)
    message = store.add_exchange(conversation, question, answer("Wrong answer."))
    store.record_feedback(message, -1, corrected, agent="ana")
    return message


def add_resolved_handoff(store: SupportStore, question: str, reply: str | None = None) -> int:
    """One hand-off, resolved, with the agent's ``reply`` as a message of role ``agent`` (as a hand-off
    queue stores it) when given; the hand-off answer's message id."""
    conversation = store.start_conversation(question)
    message = store.add_exchange(conversation, question, answer("Handing you over.", handoff=True))
    with session_scope(store.engine) as session:
        if reply is not None:
            session.add(Message(conversation_id=conversation, position=2, role="agent", content=reply))
        session.execute(sa.update(Handoff).where(Handoff.message_id == message).values(status="resolved"))
    return message


def add_approved_gap(store: SupportStore, kb_dir: Path, question: str, answer_text: str) -> str:
    """A gap draft approved for ``kb_dir`` as an approval commits it (before the KB is rebuilt);
    the KB entry id it becomes."""
    with session_scope(store.engine) as session:
        report = GapReport(kb=kb_key(kb_dir), source="store", questions=3, gaps=3)
        session.add(report)
        session.flush()
        draft = GapDraft(report_id=report.id, rank=0, label="gift wrap", size=3, method="generated",
                         status="approved", question=question, final_answer=answer_text)  # fmt: skip
        session.add(draft)
        session.flush()
        draft.entry_id = entry_id(draft.id)
        return draft.entry_id
