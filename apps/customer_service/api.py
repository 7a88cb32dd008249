"""HTTP endpoints of the support bot (mounted at ``/v1/support`` by ``aigc serve``).

Each endpoint parses the request, calls the same :class:`SupportBot` and :class:`SupportStore`
methods the chat page and ``aigc support ask`` use, and renders the result as JSON (or server-sent
events for ``/ask/stream``). Asked questions and answers are stored as conversations, like the UI's.

The hand-off queue (``/handoffs``: list, take, reply, release, resolve, metrics) calls the
:class:`~apps.customer_service.handoff_queue.HandoffQueue` the queue page and ``aigc support take``
use; the key's user is the agent. A refused action (taking a taken case...) answers 409 with the
reason; a new hand-off is announced to the configured webhook by this process's sender.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query
from fastapi import Path as PathParam
from fastapi.responses import StreamingResponse
from pydantic import AfterValidator, BaseModel, BeforeValidator, Field, StrictInt, field_validator
from sqlalchemy.engine import Engine

from apps.customer_service.bot import Answer, EmptyQuestionError, SupportBot
from apps.customer_service.handoff import HandoffError, InvalidTransition, NotYourCase
from apps.customer_service.handoff_queue import MAX_INTENT_CHARS, MAX_REPLY_CHARS, Case, HandoffQueue
from apps.customer_service.storage import NotABotAnswer, SupportStore
from core.api import ApiError, ApiPlugin, BenchRequest, Principal, require, service_dependency
from core.control_chars import has_control, strip_control

logger = logging.getLogger(__name__)

MAX_QUESTION_CHARS = 20_000  # the bot truncates long questions itself; this only bounds the request
CHAT = "chat"
HANDOFFS = "handoffs"
CONVERSATIONS_ALL = "conversations.all"


@dataclass
class SupportService:
    """The loaded bot and the conversation store of one API process."""

    bot: SupportBot
    store: SupportStore
    kb_dir: Path

    @property
    def queue(self) -> HandoffQueue:
        """The hand-off queue over the same store."""
        return HandoffQueue(self.store)


def load_service(engine: Engine) -> SupportService:
    """The bot over the default KB (``$AIGC_DATA_DIR/support/kb``) with its answer model loaded.

    New hand-offs are announced to the webhook of the ``queue:`` settings by a sender thread of
    this process (:func:`apps.customer_service.handoff_notify.notifying_store`).

    Raises:
        FileNotFoundError: No knowledge base there yet (``aigc prepare-demo --app support``).
        ValueError: Wrong webhook settings.
    """
    from apps.customer_service.config import load_bot_config
    from apps.customer_service.handoff_notify import notifying_store
    from apps.customer_service.knowledge_base import default_kb_dir

    kb_dir = default_kb_dir()
    bot = SupportBot.from_dir(kb_dir, load_bot_config())
    try:
        _ = bot.generator  # load the answer model now, not on the first generated answer
    except Exception as err:  # noqa: BLE001 - quoted answers and hand-offs still work without it
        logger.warning("Answer model not loaded", extra={"error": str(err)})
    bot.predict_intent("warm up")
    bot.retriever.search("warm up", k=1)
    return SupportService(bot, notifying_store(engine), kb_dir)


def _check(service: SupportService) -> None:
    service.store.stats()


support = service_dependency("support")
router = APIRouter()


def _plain_id(value: str | None) -> str | None:
    """An id or label as given, refused when it holds a control character (a cleaned id names another)."""
    if value is not None and has_control(value):
        raise ValueError("must not contain control characters")
    return value


def _not_bool(value: Any) -> Any:
    """Refuse JSON true/false where a number belongs (pydantic reads true as 1)."""
    if isinstance(value, bool):
        raise ValueError("must be a number, not true or false")
    return value


#: A conversation id in a path: at most 64 characters, no control characters.
ConversationPath = Annotated[str, PathParam(max_length=64), AfterValidator(_plain_id)]


class AskRequest(BaseModel):
    """A customer's question, optionally continuing a conversation."""

    question: str = Field(min_length=1, max_length=MAX_QUESTION_CHARS)
    conversation_id: Annotated[str | None, AfterValidator(_plain_id)] = Field(default=None, max_length=64)

    @field_validator("question")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        # Refused here, before a conversation is started for it (the bot refuses it too, too late). Control
        # characters are no text: the bot and the store remove them from whatever they keep.
        if not strip_control(value).strip():
            raise ValueError("the question is empty")
        return value


class SourceOut(BaseModel):
    """A cited knowledge-base entry."""

    id: str
    title: str
    url: str | None = None
    score: float


class AskResponse(BaseModel):
    """The bot's answer, stored as the next exchange of ``conversation_id``."""

    conversation_id: str
    message_id: int
    answer: str
    route: str = Field(description="How it was answered: faq (quoted), extract, generate or handoff")
    confidence: float
    handoff: bool
    handoff_reason: str | None = Field(
        default=None,
        description="Why it was handed off: low_confidence, out_of_scope, asked_for_human, deadline or "
        "not_covered (the question names something the sources do not mention; see uncovered)",
    )
    uncovered: list[str] = Field(
        default_factory=list,
        description="What the question names (a place, product, code) that the sources never mention",
    )
    sources: list[SourceOut]
    intent: str | None = None
    intent_confidence: float | None = None
    notice: str | None = None
    latency_ms: float


class FeedbackRequest(BaseModel):
    """An agent's rating of one answer (+1 / -1), optionally with the answer it should have given."""

    # Strict: true is not a thumbs-up and "2" is not a message id (pydantic would convert both).
    message_id: StrictInt = Field(ge=1, le=2**62)
    rating: Annotated[Literal[1, -1], BeforeValidator(_not_bool)]
    corrected_answer: str | None = Field(default=None, max_length=MAX_QUESTION_CHARS)


class ConversationOut(BaseModel):
    """One conversation in the list."""

    id: str
    title: str
    owner: str | None = None
    intent: str | None = None
    handoff: bool
    state: str = Field(description="Hand-off state: bot, waiting, taken or resolved")
    messages: int
    created_at: datetime
    updated_at: datetime


CaseId = Annotated[int, PathParam(ge=1, le=2**62, description="The hand-off's id")]


class HandoffSourceOut(BaseModel):
    """An entry retrieved for the handed-off question."""

    id: str
    title: str
    url: str | None = None
    score: float
    suggested: bool = Field(description="Whether the bot's suggestion quotes it")


class HandoffOut(BaseModel):
    """A hand-off case: the question the bot handed to a human, its state and the bot's draft."""

    id: int
    conversation_id: str
    message_id: int
    question: str
    reason: str = Field(description="low_confidence, out_of_scope, asked_for_human, deadline or not_covered")
    reason_label: str
    status: str = Field(description="waiting, taken or resolved")
    handed_off_at: datetime
    taken_at: datetime | None = None
    taken_by: str | None = None
    resolved_at: datetime | None = None
    resolved_by: str | None = None
    suggestion: str = Field(description="The bot's draft answer for the agent (empty: none)")
    sources: list[HandoffSourceOut]
    intent: str | None = Field(
        None, description="The intent the resolving agent said the question was (null: not given)"
    )


class ReplyRequest(BaseModel):
    """An agent's answer to the customer of a taken hand-off."""

    text: str = Field(min_length=1, max_length=MAX_REPLY_CHARS)


class ResolveRequest(BaseModel):
    """Optional body of a resolve: which intent the customer's question was, in the agent's judgement."""

    intent: Annotated[str | None, AfterValidator(_plain_id)] = Field(
        None,
        min_length=1,
        max_length=MAX_INTENT_CHARS,
        description="A label of the intents file; `aigc support refresh` trains the intent model on it",
    )


class HandoffDayOut(BaseModel):
    """Hand-offs of one day (UTC) and the median minutes from hand-off to take and to resolve."""

    day: str
    handed_off: int
    taken: int
    resolved: int
    median_take_min: float | None = Field(None, description="Median over the day's taken cases only")
    median_resolve_min: float | None = None
    waiting: int = Field(0, description="The day's cases still waiting (never taken, or released)")
    taken_share: float | None = Field(None, description="Share of the day's cases taken")


def _sees_all(principal: Principal) -> bool:
    from core.auth.roles import allowed

    return allowed(principal.role, CONVERSATIONS_ALL)


def _own_messages(
    service: SupportService, conversation_id: str, principal: Principal, field: str
) -> list[dict[str, Any]]:
    """The conversation's messages; 404 when it does not exist or belongs to another agent."""
    try:
        owner = service.store.conversation_owner(conversation_id)
    except KeyError:
        owner, exists = None, False
    else:
        exists = True
    if not exists or (owner != principal.user and not _sees_all(principal)):
        # Another agent's conversation reads as absent: ids are not confirmed to people without access.
        raise ApiError(404, f"no conversation {conversation_id!r}", field)
    return service.store.messages(conversation_id)


def _start(
    service: SupportService, request: AskRequest, principal: Principal
) -> tuple[str, list[dict[str, str]]]:
    """The conversation id (a new one, owned by the key's user, when none is given) and its history."""
    if request.conversation_id is None:
        cid = service.store.start_conversation(request.question, service.kb_dir, owner=principal.user)
        return cid, []
    messages = _own_messages(service, request.conversation_id, principal, "body.conversation_id")
    return request.conversation_id, [{"role": m["role"], "content": m["content"]} for m in messages]


def _payload(conversation_id: str, message_id: int, answer: Answer) -> dict[str, Any]:
    return {
        "conversation_id": conversation_id,
        "message_id": message_id,
        "answer": answer.text,
        "route": answer.route,
        "confidence": round(float(answer.confidence), 4),
        "handoff": answer.handoff,
        "handoff_reason": answer.handoff_reason,
        "uncovered": list(answer.uncovered),
        "sources": [{"id": s.id, "title": s.title, "url": s.url, "score": s.score} for s in answer.sources],
        "intent": answer.intent,
        "intent_confidence": answer.intent_confidence,
        "notice": answer.notice,
        "latency_ms": round(answer.latency_ms, 1),
    }


def _stream(service: SupportService, request: AskRequest, principal: Principal) -> tuple[str, Any]:
    """The answer stream; while a person has the conversation, the bot's holding reply instead."""
    conversation_id, history = _start(service, request, principal)
    case = service.queue.open_case(conversation_id) if request.conversation_id is not None else None
    try:
        if case is not None:
            return conversation_id, service.bot.held(request.question, case.reason, case.status == "taken")
        return conversation_id, service.bot.stream(request.question, history)
    except EmptyQuestionError as err:
        raise ApiError(422, str(err), "body.question") from None


@router.post("/ask", response_model=AskResponse, summary="Answer a question (quoted, generated or hand-off)")
def ask(
    request: AskRequest,
    service: SupportService = Depends(support),
    principal: Principal = Depends(require(CHAT)),
) -> dict[str, Any]:
    """Answer one question from the knowledge base with cited sources, or hand off to a human.

    Without ``conversation_id`` a new conversation owned by the key's user is started. While a person
    has the conversation (its hand-off is waiting or taken) the bot does not answer: the reply says an
    agent will answer (``route`` handoff, the case's reason) and the question joins the open case."""
    conversation_id, stream = _stream(service, request, principal)
    for _ in stream:
        pass
    assert stream.answer is not None
    message_id = service.store.add_exchange(conversation_id, request.question, stream.answer)
    return _payload(conversation_id, message_id, stream.answer)


def _sse(event: str, data: dict[str, Any]) -> str:
    return f"event: {event}\ndata: {json.dumps(data, ensure_ascii=False, default=str)}\n\n"


@router.post(
    "/ask/stream",
    summary="Answer a question as server-sent events",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}, "description": "chunk events, then answer"}},
)
def ask_stream(
    request: AskRequest,
    service: SupportService = Depends(support),
    principal: Principal = Depends(require(CHAT)),
) -> StreamingResponse:
    """Stream the answer: ``chunk`` events (``{"text"}``) as it is written, then one ``answer`` event with
    the stored answer (the ``/ask`` body); an ``error`` event if generation fails midway."""
    conversation_id, stream = _stream(service, request, principal)

    def events() -> Iterator[str]:
        try:
            for chunk in stream:
                yield _sse("chunk", {"text": chunk})
            assert stream.answer is not None
            message_id = service.store.add_exchange(conversation_id, request.question, stream.answer)
            yield _sse("answer", _payload(conversation_id, message_id, stream.answer))
        except Exception as err:  # noqa: BLE001 - the status is sent already: report in the stream
            logger.exception("Streamed answer failed", extra={"conversation": conversation_id})
            yield _sse("error", {"error": f"answer failed: {type(err).__name__}", "field": None})

    return StreamingResponse(events(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"})


@router.get("/conversations", response_model=list[ConversationOut], summary="Recent conversations")
def conversations(
    limit: int = Query(50, ge=1, le=500),
    service: SupportService = Depends(support),
    principal: Principal = Depends(require(CHAT)),
) -> list[dict[str, Any]]:
    """Most recent conversations first: the key's user's own (every agent's for an admin)."""
    return service.store.conversations(limit, owner=None if _sees_all(principal) else principal.user)


@router.get("/conversations/{conversation_id}", summary="A conversation's messages")
def conversation(
    conversation_id: ConversationPath,
    service: SupportService = Depends(support),
    principal: Principal = Depends(require(CHAT)),
) -> dict[str, Any]:
    """The conversation's messages in order; answers with their sources and feedback."""
    messages = _own_messages(service, conversation_id, principal, "path.conversation_id")
    return {"id": conversation_id, "messages": messages}


@router.post("/feedback", summary="Rate an answer")
def feedback(
    request: FeedbackRequest,
    service: SupportService = Depends(support),
    principal: Principal = Depends(require(CHAT)),
) -> dict[str, Any]:
    """Thumbs up/down on an answer (replacing earlier feedback); a correction becomes an FAQ candidate.

    Only on an answer of the key's user's own conversations (any, for a role that sees every
    conversation); another agent's message reads as absent, as its conversation does.
    """
    owner = None if _sees_all(principal) else principal.user
    try:
        service.store.record_feedback(
            request.message_id, request.rating, request.corrected_answer, principal.user, owner=owner
        )
    except NotABotAnswer as err:
        raise ApiError(404, str(err), "body.message_id") from None
    return {"message_id": request.message_id, "rating": request.rating}


def _case_out(case: Case) -> dict[str, Any]:
    return {**case.__dict__, "reason_label": case.reason_label}


@router.get("/handoffs", response_model=list[HandoffOut], summary="The hand-off queue")
def handoffs(
    status: Literal["waiting", "taken", "resolved", "open", "all"] = "waiting",
    mine: bool = Query(False, description="Only the cases the key's user has taken"),
    limit: int = Query(50, ge=1, le=500),
    service: SupportService = Depends(support),
    principal: Principal = Depends(require(HANDOFFS)),
) -> list[dict[str, Any]]:
    """Hand-off cases: ``waiting`` (default) and ``open`` oldest first, the others newest first."""
    cases = service.queue.cases(status, taken_by=principal.user if mine else None, limit=limit)
    return [_case_out(c) for c in cases]


@router.get("/handoffs/metrics", response_model=list[HandoffDayOut], summary="Time to take and resolve")
def handoff_metrics(
    days: int = Query(30, ge=1, le=366),
    service: SupportService = Depends(support),
    _principal: Principal = Depends(require(HANDOFFS)),
) -> list[dict[str, Any]]:
    """Per day of hand-off (UTC): counts, and median minutes from hand-off to take and to resolve."""
    rows = service.queue.metrics(days).to_dict("records")
    return [{k: (str(v) if k == "day" else None if v != v else v) for k, v in row.items()} for row in rows]


def _act(action: Any, *args: Any, field: str = "body.text", **kwargs: Any) -> Any:
    """Run a queue action; its refusals as HTTP errors (404 unknown, 409 wrong state or agent, 422 at
    ``field`` for bad input)."""
    try:
        return action(*args, **kwargs)
    except KeyError as err:
        raise ApiError(404, str(err), "path.case_id") from None
    except (InvalidTransition, NotYourCase) as err:
        raise ApiError(409, str(err), "path.case_id") from None
    except HandoffError as err:
        raise ApiError(422, str(err), field) from None


@router.get("/handoffs/{case_id}", response_model=HandoffOut, summary="One hand-off case")
def handoff(
    case_id: CaseId,
    service: SupportService = Depends(support),
    _principal: Principal = Depends(require(HANDOFFS)),
) -> dict[str, Any]:
    """One case with its question, state, the bot's suggestion and the retrieved sources."""
    return _case_out(_act(service.queue.get, case_id))


@router.post("/handoffs/{case_id}/take", response_model=HandoffOut, summary="Take a waiting hand-off")
def take(
    case_id: CaseId,
    service: SupportService = Depends(support),
    principal: Principal = Depends(require(HANDOFFS)),
) -> dict[str, Any]:
    """Take a waiting case for the key's user; of two agents taking it at once, one gets 409."""
    return _case_out(_act(service.queue.take, case_id, principal.user))


@router.post("/handoffs/{case_id}/reply", summary="Answer the customer of a taken hand-off")
def reply(
    case_id: CaseId,
    request: ReplyRequest,
    service: SupportService = Depends(support),
    principal: Principal = Depends(require(HANDOFFS)),
) -> dict[str, Any]:
    """Add the agent's answer to the conversation (role ``agent``); only on a case the user has taken."""
    message_id = _act(service.queue.reply, case_id, principal.user, request.text, _sees_all(principal))
    return {"case_id": case_id, "message_id": message_id}


@router.post("/handoffs/{case_id}/release", response_model=HandoffOut, summary="Put a hand-off back")
def release(
    case_id: CaseId,
    service: SupportService = Depends(support),
    principal: Principal = Depends(require(HANDOFFS)),
) -> dict[str, Any]:
    """Put a taken case back in the queue (an admin may release another agent's)."""
    return _case_out(_act(service.queue.release, case_id, principal.user, _sees_all(principal)))


@router.post("/handoffs/{case_id}/resolve", response_model=HandoffOut, summary="Resolve a hand-off")
def resolve(
    case_id: CaseId,
    request: ResolveRequest | None = None,
    service: SupportService = Depends(support),
    principal: Principal = Depends(require(HANDOFFS)),
) -> dict[str, Any]:
    """Close a taken case (an admin may resolve another agent's); the optional body
    ``{"intent": LABEL}`` says which intent its question was, for the refresh to train on."""
    intent = request.intent if request is not None else None
    return _case_out(
        _act(
            service.queue.resolve,
            case_id,
            principal.user,
            _sees_all(principal),
            intent=intent,
            field="body.intent",
        )
    )


def _bench_requests() -> list[BenchRequest]:
    """Questions of the shipped sample FAQ (the demo KB quotes their answers) for the load benchmark."""
    from apps.customer_service.demo import SAMPLE_DIR
    from core.io.tables import read_rows

    questions = [row["question"] for row in read_rows(SAMPLE_DIR / "faq.csv", columns=["question"])][:20]
    return [
        BenchRequest("support/ask", "POST", "/v1/support/ask", {"question": q}, label_field="route")
        for q in questions
    ]


def plugin() -> ApiPlugin:
    """The support app's part of the HTTP API (entry point ``aigc.api``)."""
    return ApiPlugin("support", router, load_service, _check, _bench_requests)


__all__ = ["SupportService", "load_service", "plugin", "router"]
