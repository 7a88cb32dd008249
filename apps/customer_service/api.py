"""HTTP endpoints of the support bot (mounted at ``/v1/support`` by ``aigc serve``).

Each endpoint parses the request, calls the same :class:`SupportBot` and :class:`SupportStore`
methods the chat page and ``aigc support ask`` use, and renders the result as JSON (or server-sent
events for ``/ask/stream``). Asked questions and answers are stored as conversations, like the UI's.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from fastapi import APIRouter, Depends, Query
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field
from sqlalchemy.engine import Engine

from apps.customer_service.bot import Answer, EmptyQuestionError, SupportBot
from apps.customer_service.storage import SupportStore
from core.api import ApiError, ApiPlugin, BenchRequest, Principal, require, service_dependency

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


def load_service(engine: Engine) -> SupportService:
    """The bot over the default KB (``$AIGC_DATA_DIR/support/kb``) with its answer model loaded.

    Raises:
        FileNotFoundError: No knowledge base there yet (``aigc prepare-demo --app support``).
    """
    from apps.customer_service.config import load_bot_config
    from apps.customer_service.knowledge_base import default_kb_dir

    kb_dir = default_kb_dir()
    bot = SupportBot.from_dir(kb_dir, load_bot_config())
    try:
        _ = bot.generator  # load the answer model now, not on the first generated answer
    except Exception as err:  # noqa: BLE001 - quoted answers and hand-offs still work without it
        logger.warning("Answer model not loaded", extra={"error": str(err)})
    bot.predict_intent("warm up")
    bot.retriever.search("warm up", k=1)
    return SupportService(bot, SupportStore(engine), kb_dir)


def _check(service: SupportService) -> None:
    service.store.stats()


support = service_dependency("support")
router = APIRouter()


class AskRequest(BaseModel):
    """A customer's question, optionally continuing a conversation."""

    question: str = Field(min_length=1, max_length=MAX_QUESTION_CHARS)
    conversation_id: str | None = Field(default=None, max_length=64)


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
    sources: list[SourceOut]
    intent: str | None = None
    intent_confidence: float | None = None
    notice: str | None = None
    latency_ms: float


class FeedbackRequest(BaseModel):
    """An agent's rating of one answer (+1 / -1), optionally with the answer it should have given."""

    message_id: int = Field(ge=1, le=2**62)
    rating: Literal[1, -1]
    corrected_answer: str | None = Field(default=None, max_length=MAX_QUESTION_CHARS)


class ConversationOut(BaseModel):
    """One conversation in the list."""

    id: str
    title: str
    owner: str | None = None
    intent: str | None = None
    handoff: bool
    messages: int
    created_at: datetime
    updated_at: datetime


class HandoffOut(BaseModel):
    """An answer that handed the conversation to a human agent."""

    id: int
    conversation_id: str
    message_id: int
    question: str | None = None
    answer: str
    confidence: float | None = None
    reason: str
    status: str
    created_at: datetime
    resolved_at: datetime | None = None


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
        "sources": [{"id": s.id, "title": s.title, "url": s.url, "score": s.score} for s in answer.sources],
        "intent": answer.intent,
        "intent_confidence": answer.intent_confidence,
        "notice": answer.notice,
        "latency_ms": round(answer.latency_ms, 1),
    }


def _stream(service: SupportService, request: AskRequest, principal: Principal) -> tuple[str, Any]:
    conversation_id, history = _start(service, request, principal)
    try:
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

    Without ``conversation_id`` a new conversation owned by the key's user is started."""
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
    conversation_id: str,
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
    """Thumbs up/down on an answer (replacing earlier feedback); a correction becomes an FAQ candidate."""
    try:
        service.store.record_feedback(
            request.message_id, request.rating, request.corrected_answer, principal.user
        )
    except ValueError as err:
        raise ApiError(404, str(err), "body.message_id") from None
    return {"message_id": request.message_id, "rating": request.rating}


@router.get("/handoffs", response_model=list[HandoffOut], summary="The hand-off queue")
def handoffs(
    status: Literal["open", "resolved", "all"] = "open",
    limit: int = Query(50, ge=1, le=500),
    service: SupportService = Depends(support),
    _principal: Principal = Depends(require(HANDOFFS)),
) -> list[dict[str, Any]]:
    """Answers that handed off to a human, newest first."""
    return service.store.handoffs(None if status == "all" else status, limit)


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
