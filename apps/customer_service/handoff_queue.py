"""The hand-off queue: waiting cases oldest first; take, reply, release, resolve; time-to-take metrics.

Every action is one transaction that first writes the case's row (taking its lock), then checks
the state machine (:mod:`apps.customer_service.handoff`) and applies the change, so of two agents
taking the same case at the same moment exactly one wins, on SQLite (one writer at a time) and on
PostgreSQL (the second transaction waits for the first's row lock, then reads the case taken).
The loser gets :class:`~apps.customer_service.handoff.InvalidTransition` naming who has it. The audit entry
(``handoff_take``, ``handoff_release``, ``handoff_resolve``) commits in the same transaction.

The page, the ``aigc support queue|take|reply|release|resolve`` commands and the HTTP endpoints all
call :class:`HandoffQueue`.

Resolving, the agent may say which intent the customer's question was (``intent``): it is stored
with the case and audited, and ``aigc support refresh`` trains the intent model on it
(:func:`apps.customer_service.training_data.resolved_handoffs`). The bot's own guess is never used
as a label.

Example:
    >>> queue = HandoffQueue(SupportStore())
    >>> [case] = queue.waiting()
    >>> queue.take(case.id, "ana")
    >>> queue.reply(case.id, "ana", "Your refund was sent today.")
    >>> queue.resolve(case.id, "ana").status
    'resolved'
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, aliased

from apps.customer_service.handoff import (
    OPEN_STATES,
    REASON_LABELS,
    TRANSITIONS,
    HandoffAction,
    HandoffError,
    HandoffState,
    InvalidTransition,
    NotYourCase,
    UnknownCase,
    next_state,
)
from apps.customer_service.storage import Conversation, Handoff, Message, MessageSource, SupportStore
from core.auth.audit import record_event
from core.control_chars import strip_control
from core.storage import session_scope, utcnow

logger = logging.getLogger(__name__)

#: Audit actions of the queue (``core_audit_log.action``).
AUDIT_ACTIONS: dict[HandoffAction, str] = {
    HandoffAction.TAKE: "handoff_take",
    HandoffAction.RELEASE: "handoff_release",
    HandoffAction.RESOLVE: "handoff_resolve",
}
MAX_REPLY_CHARS = 20_000
#: Longest intent label an agent may give (the ``support_handoffs.intent`` column).
MAX_INTENT_CHARS: int = Handoff.__table__.c.intent.type.length
STATUS_FILTERS: tuple[str, ...] = ("waiting", "taken", "resolved", "open", "all")


@dataclass(frozen=True)
class Case:
    """A hand-off case as the queue shows it.

    Attributes:
        id: The case (``support_handoffs.id``).
        conversation_id: Its conversation.
        title: The conversation's title.
        owner: Who started the conversation (an agent at the chat page or an API key's user).
        question: The customer's question that the bot handed off.
        reason: A :class:`~apps.customer_service.handoff.HandoffReason` value.
        status: ``waiting``, ``taken`` or ``resolved``.
        handed_off_at: When the bot handed off.
        taken_at: When the current agent took it (``None`` while waiting).
        taken_by: That agent.
        resolved_at: When it was resolved.
        resolved_by: Who resolved it.
        suggestion: The bot's draft answer for the agent (empty when it has none).
        sources: The entries retrieved for the question (``id``, ``title``, ``url``, ``score``,
            ``suggested``: whether the suggestion quotes it), best first.
        message_id: The bot's answer that handed off.
        kb: The knowledge base the conversation was answered from.
        intent: The intent the resolving agent said the question was (``None``: not given); the
            refresh trains the intent model on it.
    """

    id: int
    conversation_id: str
    title: str
    owner: str | None
    question: str
    reason: str
    status: str
    handed_off_at: datetime
    taken_at: datetime | None
    taken_by: str | None
    resolved_at: datetime | None
    resolved_by: str | None
    suggestion: str
    sources: list[dict[str, Any]] = field(default_factory=list)
    message_id: int = 0
    kb: str | None = None
    intent: str | None = None

    @property
    def reason_label(self) -> str:
        """The reason in words."""
        return REASON_LABELS.get(self.reason, self.reason)

    def age(self, now: datetime | None = None) -> timedelta:
        """How long it has waited (or waited before it was taken)."""
        end = self.taken_at if self.status != HandoffState.WAITING and self.taken_at else now or utcnow()
        return max(end - self.handed_off_at, timedelta(0))

    def to_json(self) -> dict[str, Any]:
        """JSON-friendly fields (timestamps as ISO 8601)."""
        data = asdict(self)
        for key, value in data.items():
            if isinstance(value, datetime):
                data[key] = value.isoformat()
        return data | {"reason_label": self.reason_label}


def format_age(age: timedelta) -> str:
    """``45 s``, ``12 min``, ``3 h 05 min``, ``2 d 04 h``."""
    seconds = int(age.total_seconds())
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min"
    if seconds < 86400:
        return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"
    return f"{seconds // 86400} d {seconds % 86400 // 3600:02d} h"


class HandoffQueue:
    """The hand-off queue over the support tables.

    Args:
        store: The conversation store (its engine is used; the tables exist).
        clock: Current time (aware UTC; tests inject one).
    """

    def __init__(self, store: SupportStore, clock: Callable[[], datetime] = utcnow) -> None:
        self.store = store
        self.engine: Engine = store.engine
        self.clock = clock

    # ------------------------------------------------------------------------------ reads
    def waiting(self, limit: int = 100) -> list[Case]:
        """Cases waiting for an agent, oldest first."""
        return self.cases("waiting", limit=limit)

    def cases(self, status: str = "open", taken_by: str | None = None, limit: int = 100) -> list[Case]:
        """Cases by status: ``waiting`` and ``open`` oldest first, the others newest first.

        Args:
            status: ``waiting``, ``taken``, ``resolved``, ``open`` (waiting or taken) or ``all``.
            taken_by: Only the cases this agent has taken (or resolved, with ``resolved``/``all``).
            limit: At most this many.

        Raises:
            ValueError: An unknown status.
        """
        if status not in STATUS_FILTERS:
            raise ValueError(f"unknown hand-off status {status!r}; choose one of {', '.join(STATUS_FILTERS)}")
        stmt = self._select()
        if status == "open":
            stmt = stmt.where(Handoff.status.in_([s.value for s in OPEN_STATES]))
        elif status != "all":
            stmt = stmt.where(Handoff.status == status)
        if taken_by is not None:
            stmt = stmt.where(Handoff.taken_by == taken_by)
        oldest_first = status in ("waiting", "open")
        order = Handoff.handed_off_at if oldest_first else Handoff.handed_off_at.desc()
        stmt = stmt.order_by(order, Handoff.id if oldest_first else Handoff.id.desc()).limit(limit)
        with session_scope(self.engine) as session:
            return self._cases(session, session.execute(stmt).all())

    def get(self, case_id: int) -> Case:
        """One case.

        Raises:
            UnknownCase: No such case (a ``KeyError``).
        """
        with session_scope(self.engine) as session:
            rows = session.execute(self._select().where(Handoff.id == case_id)).all()
            if not rows:
                raise UnknownCase(f"no hand-off {case_id}")
            return self._cases(session, rows)[0]

    def conversation_state(self, conversation_id: str) -> HandoffState:
        """The conversation's state: its latest case's, or ``bot`` without one.

        Raises:
            KeyError: No such conversation.
        """
        with session_scope(self.engine) as session:
            if session.get(Conversation, conversation_id) is None:
                raise KeyError(f"no conversation {conversation_id!r}")
            latest = session.scalar(
                sa.select(Handoff.status)
                .where(Handoff.conversation_id == conversation_id)
                .order_by(Handoff.handed_off_at.desc(), Handoff.id.desc())
                .limit(1)
            )
        return HandoffState(latest or HandoffState.BOT)

    def open_case(self, conversation_id: str) -> Case | None:
        """The conversation's waiting or taken case (a person has it), or ``None`` (with the bot)."""
        with session_scope(self.engine) as session:
            rows = session.execute(
                self._select()
                .where(Handoff.conversation_id == conversation_id, Handoff.status.in_(OPEN_STATES))
                .order_by(Handoff.handed_off_at.desc(), Handoff.id.desc())
                .limit(1)
            ).all()
            return self._cases(session, rows)[0] if rows else None

    def counts(self) -> dict[str, int]:
        """``{status: cases}`` for waiting, taken and resolved (zeros included)."""
        with session_scope(self.engine) as session:
            found = dict(
                session.execute(sa.select(Handoff.status, sa.func.count()).group_by(Handoff.status)).all()
            )
        return {s.value: int(found.get(s.value, 0)) for s in HandoffState if s != HandoffState.BOT}

    # ------------------------------------------------------------------------------ actions
    def take(self, case_id: int, agent: str) -> Case:
        """Take a waiting case; it is then the agent's alone.

        Raises:
            KeyError: No such case.
            InvalidTransition: It is not waiting (taken by someone: the message names them).
        """
        return self._move(case_id, HandoffAction.TAKE, agent)

    def release(self, case_id: int, agent: str, override: bool = False) -> Case:
        """Put a taken case back in the queue (``override``: someone else's, for an admin).

        Raises:
            KeyError, InvalidTransition, NotYourCase: No such case, not taken, or another agent's.
        """
        return self._move(case_id, HandoffAction.RELEASE, agent, override)

    def resolve(self, case_id: int, agent: str, override: bool = False, intent: str | None = None) -> Case:
        """Close a taken case (``override``: someone else's, for an admin).

        Args:
            case_id: The case.
            agent: Who resolves it.
            override: Act on another agent's case (an admin).
            intent: Which intent the customer's question was, in the agent's judgement (stripped;
                ``None``: not given). Stored with the case and in the audit entry, in the same
                transaction; the refresh trains the intent model on it.

        Raises:
            HandoffError: An empty or too long intent.
            KeyError, InvalidTransition, NotYourCase: No such case, not taken, or another agent's.
        """
        return self._move(case_id, HandoffAction.RESOLVE, agent, override, intent=check_intent(intent))

    def reply(self, case_id: int, agent: str, text: str, override: bool = False) -> int:
        """Add the agent's answer to the conversation of a case they have taken.

        Returns:
            The new message's id (role ``agent``).

        Raises:
            HandoffError: An empty or too long reply.
            KeyError, InvalidTransition, NotYourCase: No such case, not taken, or another agent's.
        """
        text = strip_control(text or "").strip()  # control characters only: an empty reply
        if not text:
            raise HandoffError("the reply is empty: type the answer for the customer")
        if len(text) > MAX_REPLY_CHARS:
            raise HandoffError(f"the reply has {len(text)} characters; at most {MAX_REPLY_CHARS} are stored")
        now = self.clock()
        with session_scope(self.engine) as session:
            case = self._locked(session, case_id, HandoffAction.REPLY, agent, override, now)
            conversation_id = case.conversation_id
            session.execute(
                sa.update(Conversation).where(Conversation.id == conversation_id).values(updated_at=now)
            )
            last = session.scalar(
                sa.select(sa.func.max(Message.position)).where(Message.conversation_id == conversation_id)
            )
            message = Message(
                conversation_id=conversation_id,
                position=0 if last is None else last + 1,
                role="agent",
                content=text,
                author=agent,
                created_at=now,
            )
            session.add(message)
            session.flush()
            message_id = message.id
        logger.info("Agent replied", extra={"handoff_id": case_id, "agent": agent, "message_id": message_id})
        return message_id

    def _move(
        self,
        case_id: int,
        action: HandoffAction,
        agent: str,
        override: bool = False,
        intent: str | None = None,
    ) -> Case:
        """Apply a state change (resolving: with the agent's intent), audited, in one transaction."""
        now = self.clock()
        with session_scope(self.engine) as session:
            case = self._locked(session, case_id, action, agent, override, now)
            details: dict[str, Any] = {
                "conversation_id": case.conversation_id,
                "reason": case.reason,
                "seconds_since_handoff": round((now - case.handed_off_at).total_seconds(), 1),
            }
            if case.taken_by not in (None, agent):
                details["taken_by"] = case.taken_by  # an admin acting on another agent's case
            case.status = next_state(case.status, action).value
            if action == HandoffAction.TAKE:
                case.taken_by, case.taken_at = agent, now
            elif action == HandoffAction.RELEASE:
                case.taken_by, case.taken_at = None, None
            elif action == HandoffAction.RESOLVE:
                case.resolved_by, case.resolved_at = agent, now
                if intent is not None:
                    case.intent = intent
                    details["intent"] = intent
            record_event(
                AUDIT_ACTIONS[action],
                actor=agent,
                target=f"handoff:{case_id}",
                details=details,
                session=session,
            )
        logger.info("Hand-off %s", action.value, extra={"handoff_id": case_id, "agent": agent})
        return self.get(case_id)

    @staticmethod
    def _locked(
        session: Session, case_id: int, action: HandoffAction, agent: str, override: bool, now: datetime
    ) -> Handoff:
        """The case, locked until commit, after checking that ``agent`` may do ``action`` now.

        The first statement writes the case's row: that takes its lock (a row lock on PostgreSQL,
        the database's write lock on SQLite) before anything is read, so the state checked below
        cannot change before this transaction commits; a second agent's identical transaction
        waits here, then reads the state the first one left.

        Raises:
            HandoffError: No agent name.
            KeyError: No such case.
            InvalidTransition: ``action`` is not valid in the case's state.
            NotYourCase: Another agent has the case (and not ``override``).
        """
        if not agent:
            raise HandoffError("an agent name is needed to act on the queue")
        locked = session.execute(sa.update(Handoff).where(Handoff.id == case_id).values(updated_at=now))
        if locked.rowcount != 1:
            raise UnknownCase(f"no hand-off {case_id}")
        case = session.get_one(Handoff, case_id)
        subject = f"hand-off {case_id}"
        if (HandoffState(case.status), action) not in TRANSITIONS:
            raise InvalidTransition(case.status, action, subject, by=case.taken_by)
        if case.status == HandoffState.TAKEN and case.taken_by != agent and not override:
            raise NotYourCase(
                f"cannot {'reply to' if action == HandoffAction.REPLY else action.value} {subject}: "
                f"{case.taken_by} has taken it; only they (or an admin) can"
            )
        return case

    # ------------------------------------------------------------------------------ metrics
    def metrics(self, days: int = 30, now: datetime | None = None) -> pd.DataFrame:
        """Per day of hand-off (UTC): counts, median minutes to take and to resolve, and what still waits.

        Columns: ``day`` (date), ``handed_off``, ``taken`` (cases taken since), ``resolved``,
        ``median_take_min`` and ``median_resolve_min`` (both from the hand-off, over the cases taken
        or resolved; empty when none), ``waiting`` (cases still untaken) and ``taken_share``
        (``taken / handed_off``). The medians alone flatter a day whose cases mostly still wait;
        ``waiting`` and ``taken_share`` show it. The last ``days`` days, oldest first; days without
        hand-offs are left out.
        """
        now = now or self.clock()
        start = (now - timedelta(days=days - 1)).replace(hour=0, minute=0, second=0, microsecond=0)
        stmt = sa.select(Handoff.handed_off_at, Handoff.taken_at, Handoff.resolved_at, Handoff.status).where(
            Handoff.handed_off_at >= start
        )
        with session_scope(self.engine) as session:
            rows = session.execute(stmt).all()
        return daily_metrics(rows)

    # ------------------------------------------------------------------------------ helpers
    @staticmethod
    def _select() -> sa.Select[Any]:
        question = aliased(Message)
        answer = aliased(Message)
        return (
            sa.select(Handoff, Conversation.title, Conversation.owner, Conversation.kb, question.content)
            .join(Conversation, Conversation.id == Handoff.conversation_id)
            .join(answer, answer.id == Handoff.message_id)
            .outerjoin(
                question,
                (question.conversation_id == answer.conversation_id)
                & (question.position == answer.position - 1),
            )
        )

    @staticmethod
    def _cases(session: Session, rows: Sequence[Any]) -> list[Case]:
        ids = [row[0].message_id for row in rows]
        sources: dict[int, list[dict[str, Any]]] = {i: [] for i in ids}
        for s in session.scalars(
            sa.select(MessageSource).where(MessageSource.message_id.in_(ids)).order_by(MessageSource.rank)
        ):
            sources[s.message_id].append({"id": s.entry_id, "title": s.title, "url": s.url, "score": s.score})
        cases = []
        for h, title, owner, kb, question in rows:
            suggested = set(h.suggestion_sources or [])
            cases.append(
                Case(
                    id=h.id,
                    conversation_id=h.conversation_id,
                    title=title,
                    owner=owner,
                    question=question or "",
                    reason=h.reason,
                    status=h.status,
                    handed_off_at=h.handed_off_at,
                    taken_at=h.taken_at,
                    taken_by=h.taken_by,
                    resolved_at=h.resolved_at,
                    resolved_by=h.resolved_by,
                    suggestion=h.suggestion or "",
                    sources=[s | {"suggested": s["id"] in suggested} for s in sources[h.message_id]],
                    message_id=h.message_id,
                    kb=kb or None,
                    intent=h.intent,
                )
            )
        return cases


def check_intent(intent: str | None) -> str | None:
    """The agent's intent label, stripped (``None`` stays ``None``: not given).

    Raises:
        HandoffError: It is empty or longer than :data:`MAX_INTENT_CHARS`.
    """
    if intent is None:
        return None
    label = intent.strip()
    if not label:
        raise HandoffError("the intent is empty: give an intent label, or leave it out")
    if len(label) > MAX_INTENT_CHARS:
        raise HandoffError(f"the intent has {len(label)} characters; at most {MAX_INTENT_CHARS} are stored")
    return label


def daily_metrics(rows: Sequence[Sequence[Any]]) -> pd.DataFrame:
    """Per-day counts and median minutes from ``(handed_off_at, taken_at, resolved_at, status)`` rows.

    Args:
        rows: One row per hand-off case.

    Returns:
        The frame :meth:`HandoffQueue.metrics` describes, one row per day of hand-off, oldest first.
    """
    columns = [
        "day",
        "handed_off",
        "taken",
        "resolved",
        "median_take_min",
        "median_resolve_min",
        "waiting",
        "taken_share",
    ]
    if not rows:
        return pd.DataFrame(columns=columns)
    frame = pd.DataFrame(
        [tuple(r[:3]) for r in rows], columns=["handed_off_at", "taken_at", "resolved_at"]
    ).astype("datetime64[ns, UTC]")
    frame["waiting"] = [r[3] == HandoffState.WAITING for r in rows]
    frame["day"] = frame["handed_off_at"].dt.date
    frame["take_min"] = (frame["taken_at"] - frame["handed_off_at"]).dt.total_seconds() / 60
    frame["resolve_min"] = (frame["resolved_at"] - frame["handed_off_at"]).dt.total_seconds() / 60
    grouped = frame.groupby("day", sort=True)
    out = pd.DataFrame(
        {
            "handed_off": grouped.size(),
            "taken": grouped["taken_at"].count(),
            "resolved": grouped["resolved_at"].count(),
            "median_take_min": grouped["take_min"].median().round(2),
            "median_resolve_min": grouped["resolve_min"].median().round(2),
            "waiting": grouped["waiting"].sum().astype(int),
        }
    ).reset_index()
    out["taken_share"] = (out["taken"] / out["handed_off"]).round(3)
    return out[columns]


__all__ = [
    "AUDIT_ACTIONS",
    "MAX_INTENT_CHARS",
    "MAX_REPLY_CHARS",
    "STATUS_FILTERS",
    "Case",
    "HandoffQueue",
    "check_intent",
    "daily_metrics",
    "format_age",
]
