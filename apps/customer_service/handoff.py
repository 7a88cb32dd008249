"""The hand-off state machine: ``bot`` → ``waiting`` → ``taken`` (by one agent) → ``resolved``.

A conversation is with the bot until an answer hands it off; it then *waits* in the queue until
an agent *takes* it (one agent at a time), answers and *resolves* it. Every hand-off opens a
*case* (a ``support_handoffs`` row) with its reason and timestamps; a conversation has at most
one open (waiting or taken) case, and a resolved conversation that the bot hands off again opens
a new case. The conversation's state is that of its latest case (``bot`` without one).

===========  ============  ==========  ===========================================
from         action        to          who
===========  ============  ==========  ===========================================
bot          hand_off      waiting     the bot (an answer with ``handoff``)
resolved     hand_off      waiting     the bot, again later in the conversation
waiting      take          taken       any agent; of two taking at once, one wins
taken        reply         taken       the agent who took it (or an admin)
taken        release       waiting     the agent who took it (or an admin)
taken        resolve       resolved    the agent who took it (or an admin)
===========  ============  ==========  ===========================================

Anything else (resolving a waiting case, taking a taken one, replying before taking...) raises
:class:`InvalidTransition` with a message that says what the case is and what to do. This module
is pure; :mod:`apps.customer_service.handoff_queue` applies it to
the database atomically.

Reasons (:class:`HandoffReason`) come from what the bot reports
(:attr:`apps.customer_service.bot.Answer.handoff_reason`):

* ``asked_for_human`` — the question asks for a person (:mod:`apps.customer_service.human_request`);
* ``deadline`` — the answer model was busy past its deadline or its queue was full;
* ``out_of_scope`` — the gate found nothing close in the KB (retrieval confidence below
  ``gate.out_of_scope_ratio`` × the hand-off threshold, or no usable entry);
* ``not_covered`` — the question names something (a place, product, code) that neither the FAQ
  the gate matched nor the sentences the bot could quote mention (``Answer.uncovered`` lists it);
* ``low_confidence`` — any other hand-off: confidence under the threshold but near it, or no
  passage sentence that answers the question well enough to quote.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from enum import StrEnum
from typing import Any


class HandoffState(StrEnum):
    """Where a conversation stands."""

    BOT = "bot"
    WAITING = "waiting"
    TAKEN = "taken"
    RESOLVED = "resolved"


class HandoffAction(StrEnum):
    """What moves a conversation from one state to another."""

    HAND_OFF = "hand_off"
    TAKE = "take"
    REPLY = "reply"
    RELEASE = "release"
    RESOLVE = "resolve"


class HandoffReason(StrEnum):
    """Why the bot handed off."""

    LOW_CONFIDENCE = "low_confidence"
    OUT_OF_SCOPE = "out_of_scope"
    ASKED_FOR_HUMAN = "asked_for_human"
    DEADLINE = "deadline"
    NOT_COVERED = "not_covered"


#: Human-readable reasons for pages and commands.
REASON_LABELS: dict[str, str] = {
    HandoffReason.LOW_CONFIDENCE: "low confidence",
    HandoffReason.OUT_OF_SCOPE: "out of scope",
    HandoffReason.ASKED_FOR_HUMAN: "customer asked for a human",
    HandoffReason.DEADLINE: "answer model busy (deadline)",
    HandoffReason.NOT_COVERED: "question names something the sources do not cover",
}

#: ``(state, action) -> next state``: the only valid transitions.
TRANSITIONS: dict[tuple[HandoffState, HandoffAction], HandoffState] = {
    (HandoffState.BOT, HandoffAction.HAND_OFF): HandoffState.WAITING,
    (HandoffState.RESOLVED, HandoffAction.HAND_OFF): HandoffState.WAITING,
    (HandoffState.WAITING, HandoffAction.TAKE): HandoffState.TAKEN,
    (HandoffState.TAKEN, HandoffAction.REPLY): HandoffState.TAKEN,
    (HandoffState.TAKEN, HandoffAction.RELEASE): HandoffState.WAITING,
    (HandoffState.TAKEN, HandoffAction.RESOLVE): HandoffState.RESOLVED,
}
#: States of a case that is still with a person (at most one per conversation).
OPEN_STATES: tuple[HandoffState, ...] = (HandoffState.WAITING, HandoffState.TAKEN)

_HINTS: dict[tuple[HandoffState, HandoffAction], str] = {
    (HandoffState.WAITING, HandoffAction.RESOLVE): "take it first, answer, then resolve it",
    (HandoffState.WAITING, HandoffAction.RELEASE): "it is already in the queue",
    (HandoffState.WAITING, HandoffAction.REPLY): "take it first",
    (HandoffState.RESOLVED, HandoffAction.REPLY): "it is closed",
    (HandoffState.TAKEN, HandoffAction.TAKE): "another agent is on it",
    (HandoffState.RESOLVED, HandoffAction.TAKE): "it is closed; the bot reopens it if it hands off again",
    (HandoffState.RESOLVED, HandoffAction.RESOLVE): "it is closed already",
    (HandoffState.RESOLVED, HandoffAction.RELEASE): "it is closed",
    (HandoffState.WAITING, HandoffAction.HAND_OFF): "it is in the queue already",
    (HandoffState.TAKEN, HandoffAction.HAND_OFF): "an agent has it already",
}


class HandoffError(ValueError):
    """A queue action that cannot be done; the message says why, in one line."""


class InvalidTransition(HandoffError):
    """The action is not valid in the case's current state.

    Args:
        state: The case's state.
        action: What was tried.
        subject: What it was tried on, for the message (``hand-off 12``).
        by: Who has the case, when it is taken (named in the message).
    """

    def __init__(
        self,
        state: HandoffState | str,
        action: HandoffAction | str,
        subject: str = "the conversation",
        by: str | None = None,
    ) -> None:
        self.state = HandoffState(state)
        self.action = HandoffAction(action)
        hint = _HINTS.get((self.state, self.action))
        verb = {HandoffAction.HAND_OFF: "hand off", HandoffAction.REPLY: "reply to"}.get(
            self.action, self.action.value
        )
        holder = f" by {by}" if by and self.state == HandoffState.TAKEN else ""
        super().__init__(
            f"cannot {verb} {subject}: it is {self.state.value}{holder}" + (f" ({hint})" if hint else "")
        )


class NotYourCase(HandoffError):
    """Another agent has taken the case."""


class UnknownCase(HandoffError, KeyError):
    """No hand-off case with that id (a ``KeyError`` too)."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "no such hand-off"


def source_state(action: HandoffAction | str) -> HandoffState:
    """The one state an agent's ``action`` (take, reply, release, resolve) starts from.

    Raises:
        ValueError: ``hand_off`` (it starts from two states) or an unknown action.
    """
    sources = [state for state, act in TRANSITIONS if act == HandoffAction(action)]
    if len(sources) != 1:
        raise ValueError(f"{action!r} does not start from a single state")
    return sources[0]


def next_state(
    state: HandoffState | str, action: HandoffAction | str, subject: str = "the conversation"
) -> HandoffState:
    """The state after ``action`` in ``state``.

    Raises:
        InvalidTransition: Not one of :data:`TRANSITIONS`.
        ValueError: An unknown state or action name.
    """
    key = (HandoffState(state), HandoffAction(action))
    if key not in TRANSITIONS:
        raise InvalidTransition(*key, subject=subject)
    return TRANSITIONS[key]


#: The event name in hand-off notifications.
NOTIFICATION_EVENT = "support.handoff"
#: Characters of the question a notification carries (the rest stays in the database).
NOTIFICATION_QUESTION_CHARS = 500
_NOTIFICATION_SOURCES = 5


def notification_payload(
    handoff_id: int,
    conversation_id: str,
    reason: str,
    question: str,
    handed_off_at: datetime,
    sources: Sequence[Mapping[str, Any]] = (),
) -> dict[str, Any]:
    """The JSON document a webhook receives for a new hand-off.

    The customer's question is data: it is sent as a JSON string (cut to
    :data:`NOTIFICATION_QUESTION_CHARS`), never interpreted. ``sources`` are the retrieved entries
    (``id``, ``title``, ``url``, ``score``); the first few are sent.
    """
    return {
        "event": NOTIFICATION_EVENT,
        "handoff_id": handoff_id,
        "conversation_id": conversation_id,
        "reason": reason,
        "reason_label": REASON_LABELS.get(reason, reason),
        "question": question[:NOTIFICATION_QUESTION_CHARS],
        "question_truncated": len(question) > NOTIFICATION_QUESTION_CHARS,
        "handed_off_at": handed_off_at.isoformat(),
        "sources": [
            {key: source.get(key) for key in ("id", "title", "url", "score")}
            for source in sources[:_NOTIFICATION_SOURCES]
        ],
    }


def parse_reason(value: str | None) -> HandoffReason:
    """A stored or reported reason as :class:`HandoffReason` (``None`` or unknown: low confidence)."""
    try:
        return HandoffReason(value or HandoffReason.LOW_CONFIDENCE)
    except ValueError:
        return HandoffReason.LOW_CONFIDENCE


__all__ = [
    "NOTIFICATION_EVENT",
    "OPEN_STATES",
    "REASON_LABELS",
    "TRANSITIONS",
    "HandoffAction",
    "HandoffError",
    "HandoffReason",
    "HandoffState",
    "InvalidTransition",
    "NotYourCase",
    "UnknownCase",
    "next_state",
    "notification_payload",
    "parse_reason",
    "source_state",
]
