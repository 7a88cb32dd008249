"""Support-bot tables (``support_*``, Alembic branch ``support``) and the queries on them.

* ``support_conversations``: one chat, owned by the agent who started it; tagged with the first
  predicted intent and whether it was handed off;
* ``support_messages``: user, assistant (bot) and agent (human) turns in order; assistant turns
  carry confidence, route (``faq`` / ``generate`` / ``handoff``), intent, the retrieval query and
  latencies; agent turns their author;
* ``support_message_sources``: the entries retrieved for an answer, with their scores and whether
  the answer cited them;
* ``support_handoffs``: hand-off cases: the answer that handed the conversation to a human, the
  reason, the bot's suggested answer, and the case's state (waiting → taken → resolved) with who
  and when (:mod:`apps.customer_service.handoff`; at most one open case per conversation);
* ``support_handoff_deliveries``: the outbox of hand-off notifications (:mod:`core.outbox`),
  written in the hand-off's transaction;
* ``support_feedback``: one thumbs up/down per answer from an agent, with an optional corrected
  answer (exported as FAQ rows by :mod:`apps.customer_service.feedback`);
* ``support_gap_reports``: one knowledge-gap report (:mod:`apps.customer_service.gaps`): the KB,
  where the questions came from, how many the bot could not answer, the unclustered ones;
* ``support_gap_drafts``: one cluster of a report with its draft FAQ answer and review state
  (``pending`` / ``approved`` / ``rejected``; an approved draft names the KB entry it became).

:class:`SupportStore` wraps an engine for the UI and CLI; the schema comes from
``core.storage.migrate()`` (``aigc db upgrade``), which :class:`SupportStore` runs on first use.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, aliased, mapped_column, validates

from apps.customer_service.handoff import (
    OPEN_STATES,
    HandoffAction,
    HandoffState,
    next_state,
    notification_payload,
    parse_reason,
)
from core.control_chars import strip_control
from core.outbox import OutboxColumns, new_delivery
from core.schema import migrate
from core.schema import register_migrations as _register_migrations
from core.storage import (
    TYPE_ANNOTATION_MAP,
    create_engine,
    new_metadata,
    session_scope,
    upsert,
    utcnow,
)
from core.webhooks import Sink

if TYPE_CHECKING:
    from apps.customer_service.bot import Answer

logger = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations" / "versions"


class NotABotAnswer(ValueError):
    """Feedback on a message that does not exist or is not the bot's answer."""


class SupportBase(DeclarativeBase):
    """Declarative base of the support bot's tables."""

    metadata = new_metadata()
    type_annotation_map = TYPE_ANNOTATION_MAP


class Conversation(SupportBase):
    """One chat between an agent and the bot."""

    __tablename__ = "support_conversations"

    id: Mapped[str] = mapped_column(sa.String(36), primary_key=True)
    title: Mapped[str] = mapped_column(sa.String(200))
    kb: Mapped[str | None] = mapped_column(sa.String(1024))
    owner: Mapped[str | None] = mapped_column(sa.String(64), index=True)  # user name; None without sign-in
    intent: Mapped[str | None] = mapped_column(sa.String(128), index=True)
    handoff: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    @validates("title")
    def _clean_title(self, _key: str, value: str) -> str:
        return strip_control(value)


class Message(SupportBase):
    """A user question or a bot answer."""

    __tablename__ = "support_messages"
    __table_args__ = (sa.UniqueConstraint("conversation_id", "position"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    conversation_id: Mapped[str] = mapped_column(
        sa.String(36), sa.ForeignKey("support_conversations.id", ondelete="CASCADE"), index=True
    )
    position: Mapped[int]
    role: Mapped[str] = mapped_column(sa.String(16))  # user | assistant (the bot) | agent (a person)
    content: Mapped[str] = mapped_column(sa.Text)
    route: Mapped[str | None] = mapped_column(sa.String(16))  # faq | generate | handoff
    confidence: Mapped[float | None]
    handoff: Mapped[bool] = mapped_column(default=False)
    intent: Mapped[str | None] = mapped_column(sa.String(128))
    intent_confidence: Mapped[float | None]
    query: Mapped[str | None] = mapped_column(sa.Text)
    latency_ms: Mapped[float | None]
    ttft_ms: Mapped[float | None]
    author: Mapped[str | None] = mapped_column(sa.String(64))  # the agent who wrote an agent turn
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    @validates("content", "query")
    def _clean(self, _key: str, value: str | None) -> str | None:
        # Whatever wrote it (API, chat page, CLI file): PostgreSQL refuses a NUL, terminals obey escapes.
        return None if value is None else strip_control(value)


class MessageSource(SupportBase):
    """A KB entry retrieved for an answer, with its scores."""

    __tablename__ = "support_message_sources"

    message_id: Mapped[int] = mapped_column(
        sa.ForeignKey("support_messages.id", ondelete="CASCADE"), primary_key=True
    )
    entry_id: Mapped[str] = mapped_column(sa.String(512), primary_key=True)
    rank: Mapped[int]
    title: Mapped[str] = mapped_column(sa.Text)
    url: Mapped[str | None] = mapped_column(sa.String(2048))
    score: Mapped[float]
    cosine: Mapped[float | None]
    cited: Mapped[bool] = mapped_column(default=False)


class Handoff(SupportBase):
    """A hand-off case: waiting, taken by one agent, resolved (:mod:`apps.customer_service.handoff`)."""

    __tablename__ = "support_handoffs"
    __table_args__ = (
        # At most one open case per conversation (a second hand-off joins the open one).
        sa.Index(
            "ix_support_handoffs_open_conversation",
            "conversation_id",
            unique=True,
            sqlite_where=sa.text("status IN ('waiting', 'taken')"),
            postgresql_where=sa.text("status IN ('waiting', 'taken')"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    conversation_id: Mapped[str] = mapped_column(
        sa.String(36), sa.ForeignKey("support_conversations.id", ondelete="CASCADE"), index=True
    )
    message_id: Mapped[int] = mapped_column(
        sa.ForeignKey("support_messages.id", ondelete="CASCADE"), unique=True
    )  # the answer that handed off
    reason: Mapped[str] = mapped_column(sa.String(64))  # a HandoffReason value
    status: Mapped[str] = mapped_column(
        sa.String(16), default="waiting", index=True
    )  # waiting|taken|resolved
    handed_off_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    taken_at: Mapped[datetime | None]
    taken_by: Mapped[str | None] = mapped_column(sa.String(64), index=True)
    resolved_at: Mapped[datetime | None]
    resolved_by: Mapped[str | None] = mapped_column(sa.String(64))
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    # The bot's draft for the agent and the entry ids it quotes (shown beside the reply box).
    suggestion: Mapped[str | None] = mapped_column(sa.Text)
    suggestion_sources: Mapped[list[str]] = mapped_column(sa.JSON, default=list)
    # The intent the resolving agent said the question was: a label the refresh trains the intent
    # model on (never the bot's own guess, which would teach it its mistakes). None: not given.
    intent: Mapped[str | None] = mapped_column(sa.String(128))


class HandoffDelivery(OutboxColumns, SupportBase):
    """One hand-off notification to one sink (the outbox row, :mod:`core.outbox`)."""

    __tablename__ = "support_handoff_deliveries"
    __table_args__ = (sa.UniqueConstraint("handoff_id", "sink"),)

    handoff_id: Mapped[int] = mapped_column(
        sa.ForeignKey("support_handoffs.id", ondelete="CASCADE"), index=True
    )


class Feedback(SupportBase):
    """An agent's rating of an answer, optionally with the answer it should have given."""

    __tablename__ = "support_feedback"

    id: Mapped[int] = mapped_column(primary_key=True)
    message_id: Mapped[int] = mapped_column(
        sa.ForeignKey("support_messages.id", ondelete="CASCADE"), unique=True
    )
    rating: Mapped[int]  # +1 thumbs up, -1 thumbs down
    corrected_answer: Mapped[str | None] = mapped_column(sa.Text)
    agent: Mapped[str | None] = mapped_column(sa.String(128))
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class GapReport(SupportBase):
    """A knowledge-gap report: the clusters of questions the bot could not answer, for review."""

    __tablename__ = "support_gap_reports"

    id: Mapped[int] = mapped_column(primary_key=True)
    kb: Mapped[str] = mapped_column(sa.String(1024), index=True)
    source: Mapped[str] = mapped_column(sa.String(16))  # store | file
    since: Mapped[datetime | None]
    questions: Mapped[int]  # questions considered
    gaps: Mapped[int]  # of which the bot could not answer
    unclustered: Mapped[list[str]] = mapped_column(sa.JSON, default=list)
    settings: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_by: Mapped[str | None] = mapped_column(sa.String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)


class GapDraft(SupportBase):
    """One cluster of a gap report with its draft FAQ answer and its review."""

    __tablename__ = "support_gap_drafts"

    id: Mapped[int] = mapped_column(primary_key=True)
    report_id: Mapped[int] = mapped_column(
        sa.ForeignKey("support_gap_reports.id", ondelete="CASCADE"), index=True
    )
    rank: Mapped[int]  # 0: the largest cluster
    label: Mapped[str] = mapped_column(sa.String(200))
    size: Mapped[int]
    questions: Mapped[list[str]] = mapped_column(sa.JSON, default=list)  # most central first
    nearest: Mapped[list[str]] = mapped_column(sa.JSON, default=list)
    draft_answer: Mapped[str | None] = mapped_column(sa.Text)
    draft_sources: Mapped[list[str]] = mapped_column(sa.JSON, default=list)
    method: Mapped[str] = mapped_column(sa.String(16))  # correction | generated | extractive | none
    note: Mapped[str | None] = mapped_column(sa.Text)
    flagged: Mapped[bool] = mapped_column(default=False)  # the injection screen's verdict on the draft
    flag_reason: Mapped[str | None] = mapped_column(sa.String(200))
    status: Mapped[str] = mapped_column(sa.String(16), default="pending", index=True)
    question: Mapped[str | None] = mapped_column(sa.Text)  # the FAQ question it was approved with
    final_answer: Mapped[str | None] = mapped_column(sa.Text)  # the answer it was approved with
    entry_id: Mapped[str | None] = mapped_column(sa.String(64))
    reviewed_by: Mapped[str | None] = mapped_column(sa.String(64))
    reviewed_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


GAP_DRAFT_STATUSES = ("pending", "approved", "rejected")


def register_migrations() -> None:
    """Register the ``support`` Alembic branch with core (done on import of this module)."""
    _register_migrations("support", MIGRATIONS_DIR, SupportBase.metadata)


register_migrations()


@dataclass(frozen=True)
class Correction:
    """A thumbs-down answer with the agent's corrected answer, ready to become an FAQ row."""

    message_id: int
    conversation_id: str
    question: str
    answer: str
    rejected_answer: str
    intent: str | None
    created_at: datetime


def _kb_key(kb: str | Path) -> str:
    """A knowledge base's path as conversations record it, comparable however it was spelled."""
    return str(Path(kb).expanduser().resolve())


def _kb_spellings(session: Session, kb: str | Path) -> list[str]:
    """Every ``Conversation.kb`` value that names ``kb`` (paths compared resolved).

    Each distinct recorded spelling is resolved once, not once per message; filter with
    ``Conversation.kb.in_(...)``. Conversations that recorded no KB match no KB.
    """
    wanted = _kb_key(kb)
    recorded = session.scalars(sa.select(Conversation.kb).distinct()).all()
    return [k for k in recorded if k and _kb_key(k) == wanted]


class SupportStore:
    """Conversations, answers, hand-offs and feedback in the suite's database.

    Args:
        engine: An engine, a URL, or ``None`` for ``AIGC_DB_URL`` / the local SQLite file.
        create: Run the migrations (all branches) once, so the tables exist.
        sinks: Where new hand-offs are announced (a webhook): one outbox row per sink is written
            in the hand-off's transaction (:mod:`apps.customer_service.handoff_notify` sends them).
        on_handoff: Called with the new case's id after its transaction commits (wakes a sender).
    """

    def __init__(
        self,
        engine: Engine | str | None = None,
        create: bool = True,
        sinks: Sequence[Sink] = (),
        on_handoff: Callable[[int], None] | None = None,
    ) -> None:
        self.engine = engine if isinstance(engine, Engine) else create_engine(engine)
        self.sinks = list(sinks)
        self.on_handoff = on_handoff
        if create:
            migrate(self.engine)

    # ------------------------------------------------------------------------------ writes
    def start_conversation(self, title: str, kb: str | Path | None = None, owner: str | None = None) -> str:
        """Create a conversation owned by ``owner`` (the signed-in agent); returns its id."""
        conversation_id = str(uuid.uuid4())
        with session_scope(self.engine) as session:
            session.add(
                Conversation(
                    id=conversation_id,
                    title=title.strip()[:200] or "(untitled)",
                    kb=str(kb or ""),
                    owner=owner,
                )
            )
        return conversation_id

    def add_exchange(self, conversation_id: str, question: str, answer: Answer) -> int:
        """Store a question and the bot's answer (sources, hand-off); returns the answer's message id.

        Safe with many writers to one conversation: the transaction starts by updating the
        conversation's row, which holds its write lock (a row lock on PostgreSQL, the database's
        write lock on SQLite) until commit, so positions are allocated one writer at a time.

        A hand-off answer opens a waiting case (with the bot's suggestion) unless the conversation
        has an open one, and queues its notifications, in the same transaction.

        Raises:
            KeyError: No such conversation.
        """
        opened: int | None = None
        with session_scope(self.engine) as session:
            # The write comes first: on SQLite a transaction that read before writing could not
            # upgrade its snapshot once another writer committed (SQLITE_BUSY_SNAPSHOT).
            locked = session.execute(
                sa.update(Conversation).where(Conversation.id == conversation_id).values(updated_at=utcnow())
            )
            if locked.rowcount == 0:
                raise KeyError(f"no conversation {conversation_id!r}")
            conversation = session.get_one(Conversation, conversation_id)
            last = session.scalar(
                sa.select(sa.func.max(Message.position)).where(Message.conversation_id == conversation_id)
            )
            position = 0 if last is None else last + 1
            session.add(
                Message(conversation_id=conversation_id, position=position, role="user", content=question)
            )
            reply = Message(
                conversation_id=conversation_id,
                position=position + 1,
                role="assistant",
                content=answer.text,
                route=answer.route,
                confidence=float(answer.confidence),
                handoff=answer.handoff,
                intent=answer.intent,
                intent_confidence=answer.intent_confidence,
                query=answer.query,
                latency_ms=float(answer.latency_ms),
                ttft_ms=float(answer.ttft_ms),
            )
            session.add(reply)
            session.flush()
            cited = {s.id for s in answer.sources}
            rows: dict[str, tuple[int, Any]] = {}
            for source in [*answer.sources, *answer.related]:
                rows.setdefault(source.id, (len(rows) + 1, source))
            for entry_id, (rank, source) in rows.items():
                session.add(
                    MessageSource(
                        message_id=reply.id,
                        entry_id=entry_id,
                        rank=rank,
                        title=source.title,
                        url=source.url,
                        score=float(source.score),
                        cosine=source.cosine,
                        cited=entry_id in cited,
                    )
                )
            if answer.handoff:
                opened = self._hand_off(session, conversation, reply, question, answer)
                conversation.handoff = True
            if conversation.intent is None and answer.intent is not None:
                conversation.intent = answer.intent
            conversation.updated_at = utcnow()
            reply_id = reply.id
        if opened is not None and self.on_handoff is not None:
            self.on_handoff(opened)
        return reply_id

    def _hand_off(
        self, session: Session, conversation: Conversation, reply: Message, question: str, answer: Answer
    ) -> int | None:
        """Open a waiting case for ``reply`` (none if one is open) and queue its notifications."""
        cases = session.execute(
            sa.select(Handoff.status)
            .where(Handoff.conversation_id == conversation.id)
            .order_by(Handoff.handed_off_at.desc(), Handoff.id.desc())
        ).scalars()
        latest = next(iter(cases), None) or HandoffState.BOT
        if latest in OPEN_STATES:
            return None  # already with a person: this answer joins the open case
        now = utcnow()
        case = Handoff(
            conversation_id=conversation.id,
            message_id=reply.id,
            reason=parse_reason(answer.handoff_reason).value,
            status=next_state(latest, HandoffAction.HAND_OFF).value,
            handed_off_at=now,
            updated_at=now,
            suggestion=answer.suggestion or None,
            suggestion_sources=[s.id for s in answer.suggestion_sources],
        )
        session.add(case)
        session.flush()
        if self.sinks:
            sources = [
                {"id": h.id, "title": h.title, "url": h.url, "score": h.score}
                for h in answer.related or answer.sources
            ]
            payload = notification_payload(case.id, conversation.id, case.reason, question, now, sources)
            session.add_all(
                new_delivery(HandoffDelivery, sink, f"handoff-{case.id}", payload, now, handoff_id=case.id)
                for sink in self.sinks
            )
        logger.info(
            "Handed off",
            extra={"handoff_id": case.id, "conversation": conversation.id, "reason": case.reason},
        )
        return case.id

    def record_feedback(
        self,
        message_id: int,
        rating: int,
        corrected_answer: str | None = None,
        agent: str | None = None,
        *,
        owner: str | None = None,
    ) -> None:
        """Rate an answer (+1 / -1), replacing earlier feedback on it.

        Args:
            message_id: The bot's answer.
            rating: +1 or -1.
            corrected_answer: The answer it should have given (an FAQ candidate).
            agent: Who rated it.
            owner: Only an answer of this user's conversations (``None``: any); another user's answer
                is refused as if it did not exist, so its id is not confirmed.

        Raises:
            ValueError: Rating not +1 or -1.
            NotABotAnswer: The message does not exist, is not a bot answer, or is in a conversation
                of someone other than ``owner`` (a ``ValueError``).
        """
        if rating not in (1, -1):
            raise ValueError(f"rating must be 1 (thumbs up) or -1 (thumbs down), got {rating!r}")
        corrected = strip_control(corrected_answer or "").strip() or None
        with session_scope(self.engine) as session:
            message = session.get(Message, message_id)
            if (
                message is None
                or message.role != "assistant"
                or (owner is not None and session.get(Conversation, message.conversation_id).owner != owner)
            ):
                raise NotABotAnswer(f"message {message_id} is not a bot answer")
            row = {"message_id": message_id, "rating": rating, "corrected_answer": corrected, "agent": agent}
            upsert(session, Feedback, [row], key_columns=["message_id"])

    # ------------------------------------------------------------------------------- reads
    def conversation_owner(self, conversation_id: str) -> str | None:
        """The owner of a conversation (``None`` for one started without sign-in).

        Raises:
            KeyError: No such conversation.
        """
        with session_scope(self.engine) as session:
            conversation = session.get(Conversation, conversation_id)
            if conversation is None:
                raise KeyError(f"no conversation {conversation_id!r}")
            return conversation.owner

    def conversations(self, limit: int = 50, owner: str | None = None) -> list[dict[str, Any]]:
        """Most recent conversations first (only ``owner``'s when given): id, title, owner, intent, ...

        ``state`` is the hand-off state: ``bot``, ``waiting``, ``taken`` or ``resolved``.
        """
        counts = (
            sa.select(Message.conversation_id, sa.func.count().label("n"))
            .group_by(Message.conversation_id)
            .subquery()
        )
        state = (
            sa.select(Handoff.status)
            .where(Handoff.conversation_id == Conversation.id)
            .order_by(Handoff.handed_off_at.desc(), Handoff.id.desc())
            .limit(1)
            .correlate(Conversation)
            .scalar_subquery()
        )
        stmt = (
            sa.select(Conversation, sa.func.coalesce(counts.c.n, 0), state)
            .outerjoin(counts, counts.c.conversation_id == Conversation.id)
            .order_by(Conversation.updated_at.desc(), Conversation.id)
            .limit(limit)
        )
        if owner is not None:
            stmt = stmt.where(Conversation.owner == owner)
        with session_scope(self.engine) as session:
            return [
                {
                    "id": c.id,
                    "title": c.title,
                    "kb": c.kb,
                    "owner": c.owner,
                    "intent": c.intent,
                    "handoff": c.handoff,
                    "state": status or HandoffState.BOT.value,
                    "messages": int(n),
                    "created_at": c.created_at,
                    "updated_at": c.updated_at,
                }
                for c, n, status in session.execute(stmt)
            ]

    def messages(self, conversation_id: str) -> list[dict[str, Any]]:
        """The conversation's messages in order, answers with ``sources`` and ``feedback``.

        Roles: ``user``, ``assistant`` (the bot) and ``agent`` (a person, with its ``author``).
        """
        with session_scope(self.engine) as session:
            rows = session.scalars(
                sa.select(Message)
                .where(Message.conversation_id == conversation_id)
                .order_by(Message.position)
            ).all()
            ids = [m.id for m in rows if m.role == "assistant"]
            sources: dict[int, list[dict[str, Any]]] = {i: [] for i in ids}
            for s in session.scalars(
                sa.select(MessageSource).where(MessageSource.message_id.in_(ids)).order_by(MessageSource.rank)
            ):
                sources[s.message_id].append(
                    {"id": s.entry_id, "title": s.title, "url": s.url, "score": s.score, "cited": s.cited}
                )
            feedback = {
                f.message_id: {"rating": f.rating, "corrected_answer": f.corrected_answer}
                for f in session.scalars(sa.select(Feedback).where(Feedback.message_id.in_(ids)))
            }
            reasons = dict(
                session.execute(
                    sa.select(Handoff.message_id, Handoff.reason).where(Handoff.message_id.in_(ids))
                ).all()
            )
            return [
                {
                    "id": m.id,
                    "role": m.role,
                    "content": m.content,
                    "route": m.route,
                    "confidence": m.confidence,
                    "handoff": m.handoff,
                    "intent": m.intent,
                    "intent_confidence": m.intent_confidence,
                    "latency_ms": m.latency_ms,
                    "author": m.author,
                    "handoff_reason": reasons.get(m.id),  # set on the answer that opened a case
                    "sources": sources.get(m.id, []),
                    "feedback": feedback.get(m.id),
                }
                for m in rows
            ]

    def corrections(self, since: datetime | None = None, kb: str | Path | None = None) -> list[Correction]:
        """Answers rated down with a corrected answer, oldest first.

        Args:
            since: Only feedback saved after this time.
            kb: Only conversations on this knowledge base (paths compared resolved); ``None``: all.
        """
        question = aliased(Message)
        stmt = (
            sa.select(Feedback, Message, question.content)
            .join(Message, Message.id == Feedback.message_id)
            .join(
                question,
                (question.conversation_id == Message.conversation_id)
                & (question.position == Message.position - 1),
            )
            .where(Feedback.rating < 0, Feedback.corrected_answer.is_not(None))
            .order_by(Feedback.updated_at, Feedback.id)
        )
        if since is not None:
            stmt = stmt.where(Feedback.updated_at > since)
        with session_scope(self.engine) as session:
            if kb is not None:
                stmt = stmt.join(Conversation, Conversation.id == Message.conversation_id).where(
                    Conversation.kb.in_(_kb_spellings(session, kb))
                )
            return [
                Correction(
                    message_id=m.id,
                    conversation_id=m.conversation_id,
                    question=q,
                    answer=f.corrected_answer or "",
                    rejected_answer=m.content,
                    intent=m.intent,
                    created_at=f.updated_at,
                )
                for f, m, q in session.execute(stmt)
            ]

    def asked_questions(
        self, kb: str | Path | None = None, since: datetime | None = None
    ) -> list[dict[str, Any]]:
        """Every question customers asked, oldest first, with what the bot did with it.

        Args:
            kb: Only conversations on this knowledge base (paths compared resolved); ``None``: all.
            since: Only questions asked at or after this time.

        Returns:
            Dicts with ``question``, ``asked_at``, ``conversation_id``, ``route`` (of the bot's reply,
            ``None`` when it has none) and ``retrieved`` (the reply's entry ids, best first).
        """
        answer = aliased(Message)
        stmt = (
            sa.select(Message.content, Message.created_at, Message.conversation_id, answer.id, answer.route)
            .join(Conversation, Conversation.id == Message.conversation_id)
            .outerjoin(
                answer,
                (answer.conversation_id == Message.conversation_id)
                & (answer.position == Message.position + 1)
                & (answer.role == "assistant"),
            )
            .where(Message.role == "user")
            .order_by(Message.created_at, Message.id)
        )
        if since is not None:
            stmt = stmt.where(Message.created_at >= since)
        with session_scope(self.engine) as session:
            if kb is not None:
                stmt = stmt.where(Conversation.kb.in_(_kb_spellings(session, kb)))
            rows = session.execute(stmt).all()
            ids = [reply_id for *_, reply_id, _route in rows if reply_id is not None]
            retrieved: dict[int, list[str]] = {i: [] for i in ids}
            for start in range(0, len(ids), 500):  # IN lists stay short on every database
                sources = session.execute(
                    sa.select(MessageSource.message_id, MessageSource.entry_id)
                    .where(MessageSource.message_id.in_(ids[start : start + 500]))
                    .order_by(MessageSource.message_id, MessageSource.rank)
                )
                for message_id, entry_id in sources:
                    retrieved[message_id].append(entry_id)
        return [
            {
                "question": content,
                "asked_at": asked_at,
                "conversation_id": conversation_id,
                "route": route,
                "retrieved": retrieved.get(reply_id, []) if reply_id is not None else [],
            }
            for content, asked_at, conversation_id, reply_id, route in rows
        ]

    # ------------------------------------------------------------------------ knowledge gaps
    def gap_candidates(
        self,
        since: datetime | None = None,
        low_confidence: float = 0.5,
        limit: int | None = None,
        kb: str | Path | None = None,
    ) -> list[dict[str, Any]]:
        """Answers that show a knowledge gap, oldest first: hand-offs, answers below ``low_confidence``
        and answers rated down (only those asked at or after ``since`` when given).

        Args:
            since: Only answers given at or after this time.
            low_confidence: Answers below this confidence count.
            limit: Only the newest ``limit`` answers.
            kb: Only conversations on this knowledge base (paths compared resolved); ``None``: all.

        Returns:
            Dicts with ``message_id``, ``question``, ``answer``, ``route``, ``confidence``,
            ``handoff``, ``rating`` (or ``None``), ``corrected_answer`` and ``created_at``; with
            ``limit``, the newest ``limit`` of them (still oldest first).
        """
        question = aliased(Message)
        stmt = (
            sa.select(Message, question.content, Feedback.rating, Feedback.corrected_answer)
            .join(
                question,
                (question.conversation_id == Message.conversation_id)
                & (question.position == Message.position - 1),
            )
            .outerjoin(Feedback, Feedback.message_id == Message.id)
            .where(
                Message.role == "assistant",
                Message.handoff.is_(True) | (Message.confidence < low_confidence) | (Feedback.rating < 0),
            )
            .order_by(Message.created_at.desc(), Message.id.desc())
        )
        if since is not None:
            stmt = stmt.where(Message.created_at >= since)
        with session_scope(self.engine) as session:
            if kb is not None:
                stmt = stmt.join(Conversation, Conversation.id == Message.conversation_id).where(
                    Conversation.kb.in_(_kb_spellings(session, kb))
                )
            if limit is not None:  # the newest ``limit`` answers of this KB, not of all
                stmt = stmt.limit(limit)
            rows = [
                {
                    "message_id": m.id,
                    "question": q,
                    "answer": m.content,
                    "route": m.route,
                    "confidence": m.confidence,
                    "handoff": m.handoff,
                    "rating": rating,
                    "corrected_answer": corrected,
                    "created_at": m.created_at,
                }
                for m, q, rating, corrected in session.execute(stmt)
            ]
        return rows[::-1]

    def save_gap_report(self, report: dict[str, Any], drafts: list[dict[str, Any]]) -> int:
        """Store a gap report and its drafts in one transaction; returns the report id.

        Args:
            report: :class:`GapReport` columns (``kb``, ``source``, ``since``, ``questions``, ``gaps``,
                ``unclustered``, ``settings``, ``created_by``).
            drafts: :class:`GapDraft` columns per cluster, largest first (``rank`` is their order).
        """
        with session_scope(self.engine) as session:
            row = GapReport(**report)
            session.add(row)
            session.flush()
            for rank, draft in enumerate(drafts):
                session.add(GapDraft(report_id=row.id, rank=rank, status="pending", **draft))
            return row.id

    def gap_reports(self, kb: str | None = None, limit: int = 20) -> list[dict[str, Any]]:
        """Gap reports, newest first (only of ``kb`` when given), without their drafts."""
        stmt = sa.select(GapReport).order_by(GapReport.created_at.desc(), GapReport.id.desc()).limit(limit)
        if kb is not None:
            stmt = stmt.where(GapReport.kb == kb)
        with session_scope(self.engine) as session:
            return [_columns(r) for r in session.scalars(stmt)]

    def gap_drafts(
        self, report_id: int | None = None, kb: str | None = None, status: str | None = None
    ) -> list[dict[str, Any]]:
        """Drafts of one report (by rank), or of every report of ``kb`` (newest first); only ``status``."""
        stmt = sa.select(GapDraft, GapReport.kb).join(GapReport, GapReport.id == GapDraft.report_id)
        if report_id is not None:
            stmt = stmt.where(GapDraft.report_id == report_id).order_by(GapDraft.rank)
        else:
            stmt = stmt.order_by(GapDraft.created_at.desc(), GapDraft.id.desc())
        if kb is not None:
            stmt = stmt.where(GapReport.kb == kb)
        if status is not None:
            stmt = stmt.where(GapDraft.status == status)
        with session_scope(self.engine) as session:
            return [_columns(d) | {"kb": k} for d, k in session.execute(stmt)]

    def gap_draft(self, draft_id: int) -> dict[str, Any]:
        """One draft with its report's ``kb``.

        Raises:
            KeyError: No such draft.
        """
        with session_scope(self.engine) as session:
            found = session.execute(
                sa.select(GapDraft, GapReport.kb)
                .join(GapReport, GapReport.id == GapDraft.report_id)
                .where(GapDraft.id == draft_id)
            ).first()
            if found is None:
                raise KeyError(f"no gap draft {draft_id}")
            return _columns(found[0]) | {"kb": found[1]}

    def review_gap_draft(
        self,
        draft_id: int,
        status: str,
        reviewer: str | None,
        *,
        expect: str = "pending",
        **values: Any,
    ) -> None:
        """Move a draft from ``expect`` to ``status`` (with ``question``, ``final_answer``, ``entry_id``).

        The change is conditional on the current status, so two reviewers cannot both approve.

        Raises:
            ValueError: Unknown status, or the draft is not in state ``expect``.
            KeyError: No such draft.
        """
        if status not in GAP_DRAFT_STATUSES:
            raise ValueError(f"status must be one of {GAP_DRAFT_STATUSES}, got {status!r}")
        unknown = set(values) - {"question", "final_answer", "entry_id"}
        if unknown:
            raise ValueError(f"cannot set {sorted(unknown)} on a gap draft")
        with session_scope(self.engine) as session:
            done = session.execute(
                sa.update(GapDraft)
                .where(GapDraft.id == draft_id, GapDraft.status == expect)
                .values(status=status, reviewed_by=reviewer, reviewed_at=utcnow(), **values)
            )
            if done.rowcount == 0:
                current = session.get(GapDraft, draft_id)
                if current is None:
                    raise KeyError(f"no gap draft {draft_id}")
                raise ValueError(f"gap draft {draft_id} is {current.status}, not {expect}")

    def stats(self) -> dict[str, Any]:
        """Counts of conversations, answers, hand-off cases (open: waiting or taken) and feedback."""
        with session_scope(self.engine) as session:

            def count(stmt: Any) -> int:
                return int(session.scalar(stmt) or 0)

            return {
                "conversations": count(sa.select(sa.func.count()).select_from(Conversation)),
                "answers": count(sa.select(sa.func.count()).where(Message.role == "assistant")),
                "handoffs": count(sa.select(sa.func.count()).select_from(Handoff)),
                "open_handoffs": count(
                    sa.select(sa.func.count()).where(Handoff.status.in_([s.value for s in OPEN_STATES]))
                ),
                "thumbs_up": count(sa.select(sa.func.count()).where(Feedback.rating > 0)),
                "thumbs_down": count(sa.select(sa.func.count()).where(Feedback.rating < 0)),
                "corrections": count(
                    sa.select(sa.func.count()).where(Feedback.corrected_answer.is_not(None))
                ),
            }


def _columns(row: SupportBase) -> dict[str, Any]:
    """A mapped row as a dict of its columns."""
    return {column.key: getattr(row, column.key) for column in sa.inspect(row).mapper.column_attrs}


__all__ = [
    "GAP_DRAFT_STATUSES",
    "Conversation",
    "Correction",
    "Feedback",
    "GapDraft",
    "GapReport",
    "Handoff",
    "HandoffDelivery",
    "Message",
    "MessageSource",
    "NotABotAnswer",
    "SupportBase",
    "SupportStore",
    "register_migrations",
]
