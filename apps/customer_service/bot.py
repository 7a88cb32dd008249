"""The support bot: rewrite → hybrid retrieve → confidence gate → verbatim FAQ, cited generation or hand-off.

Example:
    >>> bot = SupportBot.from_dir("kb")
    >>> reply = bot.answer("how do i get my money back")
    >>> reply.text, [s.id for s in reply.sources], reply.handoff
    ('We inspect returned items within 5 working days …', ['ret-03'], False)
    >>> for chunk in bot.stream("and how long does that take?", history=[...]):  # for the UI
    ...     print(chunk, end="")
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from apps.customer_service.confidence import Calibration, Route
from apps.customer_service.config import BotConfig
from apps.customer_service.knowledge_base import KnowledgeBase
from apps.customer_service.prompts import (
    DONT_KNOW,
    TRUNCATION_NOTICE,
    build_messages,
    finalize_citations,
    looks_like_injection,
)
from apps.customer_service.retrieval import Hit, Retriever
from apps.customer_service.rewrite import rewrite_question
from core.embeddings import Embedder
from core.paths import data_dir

logger = logging.getLogger(__name__)

Turn = Mapping[str, str]
_DONT_KNOW_RE = re.compile(r"\b(i\s+(do\s*n[o']?t|don't|cannot|can't)\s+know|not\s+sure)\b", re.IGNORECASE)


class EmptyQuestionError(ValueError):
    """The question is empty or only whitespace."""


@dataclass(frozen=True)
class Source:
    """A cited KB entry: id, title, url and the retrieval score it was ranked by."""

    id: str
    title: str
    url: str | None
    score: float
    kind: str = "faq"
    cosine: float | None = None

    @classmethod
    def from_hit(cls, hit: Hit) -> Source:
        """The source view of a retrieval hit."""
        return cls(hit.id, hit.title, hit.url, round(hit.score, 4), hit.entry.kind, hit.scores.get("dense"))


@dataclass
class Answer:
    """What the bot answered and why.

    Attributes:
        text: The answer (a verbatim FAQ answer, a generated cited answer, or the hand-off message).
        sources: Cited entries (empty on hand-off).
        confidence: Retrieval confidence in ``[0, 1]``.
        handoff: Whether a human agent should take over.
        intent: Predicted intent label (``None`` without an intent model).
        intent_confidence: Its probability.
        latency_ms: Time to the full answer.
        ttft_ms: Time to the first text chunk.
        route: ``faq`` (verbatim), ``generate`` or ``handoff``.
        query: The retrieval query (after follow-up rewriting).
        related: The top hits considered, also on hand-off, for the agent.
        notice: A message for the user (e.g. the question was truncated).
        dropped: Ids of retrieved entries left out because their text reads as instructions.
    """

    text: str
    sources: list[Source]
    confidence: float
    handoff: bool
    intent: str | None = None
    intent_confidence: float | None = None
    latency_ms: float = 0.0
    ttft_ms: float = 0.0
    route: Route = "handoff"
    query: str = ""
    related: list[Source] = field(default_factory=list)
    notice: str | None = None
    dropped: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """The ``aigc support ask --json`` payload."""
        return {
            "answer": self.text,
            "sources": [{"id": s.id, "title": s.title, "score": s.score} for s in self.sources],
            "confidence": round(self.confidence, 4),
            "handoff": self.handoff,
            "intent": self.intent,
            "latency_ms": round(self.latency_ms, 1),
        }

    def to_dict(self) -> dict[str, Any]:
        """Every field, JSON-friendly."""
        return asdict(self)


class AnswerStream:
    """Text chunks of an answer as they are produced; :attr:`answer` is set once iteration ends.

    Pass it straight to ``st.write_stream``.
    """

    def __init__(
        self, chunks: Iterator[str], finish: Callable[[str, float | None], tuple[Answer, str]]
    ) -> None:
        self._chunks = chunks
        self._finish = finish
        self.answer: Answer | None = None

    def __iter__(self) -> Iterator[str]:
        parts: list[str] = []
        first: float | None = None
        for chunk in self._chunks:
            if first is None:
                first = time.perf_counter()
            parts.append(chunk)
            yield chunk
        # The finished answer may add a citation the model left out; the stream shows it too.
        self.answer, suffix = self._finish("".join(parts), first)
        if suffix:
            yield suffix


@dataclass
class _Plan:
    question: str
    query: str
    hits: list[Hit]
    used: list[Hit]
    dropped: list[str]
    confidence: float
    route: Route
    intent: str | None
    intent_confidence: float | None
    notice: str | None
    start: float


class SupportBot:
    """Answers support questions from a knowledge base.

    Args:
        kb: The knowledge base.
        config: Bot settings.
        generator: A :class:`core.generation.Generator` (default: loaded from ``config.answer`` on
            first generated answer).
        embedder: Query encoder (default: the KB's model).
        calibration: Confidence mapping and thresholds (default: ``calibration.json`` in the KB
            directory when ``config.gate.use_calibration``, else ``config.gate``).
        intent_model: A :class:`core.classification.TextClassifier` (default: ``config.intent_model``,
            or ``$AIGC_DATA_DIR/support/intents`` when it exists; none is fine).
    """

    def __init__(
        self,
        kb: KnowledgeBase,
        config: BotConfig | None = None,
        generator: Any = None,
        embedder: Embedder | None = None,
        calibration: Calibration | None = None,
        intent_model: Any = None,
    ) -> None:
        self.kb = kb
        self.config = config or BotConfig()
        self.retriever = Retriever(kb, self.config.retrieval, embedder)
        self._generator = generator
        self.calibration = calibration or self._default_calibration()
        self._intent_model = intent_model
        self._intent_loaded = intent_model is not None

    @classmethod
    def from_dir(cls, kb_dir: str | Path, config: BotConfig | None = None, **kwargs: Any) -> SupportBot:
        """Open the KB in ``kb_dir`` (raises ``FileNotFoundError`` / ``KBFormatError``) and wrap it."""
        return cls(KnowledgeBase.load(kb_dir), config, **kwargs)

    def _default_calibration(self) -> Calibration:
        gate = self.config.gate
        if gate.use_calibration and self.kb.path is not None:
            saved = Calibration.load(self.kb.path)
            if saved is not None:
                return saved
        return Calibration(handoff_threshold=gate.handoff_threshold, verbatim_margin=gate.verbatim_margin)

    # ------------------------------------------------------------------------------ models
    @property
    def generator(self) -> Any:
        """The answer model (loaded on first use)."""
        if self._generator is None:
            from core.generation import Generator

            cfg = self.config.answer
            self._generator = Generator(cfg.model, cfg.adapter, backend=cfg.backend)  # type: ignore[arg-type]
        return self._generator

    @property
    def intent_model(self) -> Any:
        """The intent classifier, or ``None`` when none is configured or it cannot be loaded."""
        if not self._intent_loaded:
            self._intent_loaded = True
            path = (
                Path(self.config.intent_model)
                if self.config.intent_model
                else data_dir() / "support" / "intents"
            )
            if (path / "config.json").is_file():
                try:
                    from core.classification import TextClassifier

                    self._intent_model = TextClassifier.from_pretrained(path)
                except (OSError, ValueError) as err:
                    logger.warning("Intent model not loaded", extra={"path": str(path), "error": str(err)})
            elif self.config.intent_model:
                logger.warning("Intent model directory has no config.json", extra={"path": str(path)})
        return self._intent_model

    def predict_intent(self, text: str) -> tuple[str | None, float | None]:
        """``(label, probability)`` of the intent model, or ``(None, None)`` without one."""
        model = self.intent_model
        if model is None:
            return None, None
        probs = model.predict_proba([text])[0]
        best = int(probs.argmax())
        return model.labels()[best], round(float(probs[best]), 4)

    # ------------------------------------------------------------------------------ answering
    def answer(self, question: str, history: Sequence[Turn] | None = None) -> Answer:
        """Answer one question (see :meth:`stream`); returns the finished :class:`Answer`."""
        stream = self.stream(question, history)
        for _ in stream:
            pass
        assert stream.answer is not None
        return stream.answer

    def stream(self, question: str, history: Sequence[Turn] | None = None) -> AnswerStream:
        """Answer one question as a stream of text chunks.

        Args:
            question: The customer's question; longer than ``config.max_question_chars`` is truncated
                (``Answer.notice`` says so).
            history: Earlier ``{"role", "content"}`` messages, oldest first (for follow-ups).

        Returns:
            An :class:`AnswerStream`; iterate it for text, then read ``.answer``.

        Raises:
            EmptyQuestionError: The question is empty.
        """
        plan = self._plan(question, history)
        if plan.route == "generate":
            cfg = self.config.answer
            messages = self._fit_prompt(plan.question, plan.used)
            chunks = self.generator.stream(
                messages, max_new_tokens=cfg.max_new_tokens, repetition_penalty=cfg.repetition_penalty
            )
        elif plan.route == "faq":
            chunks = iter([plan.used[0].entry.text])
        else:
            chunks = iter([DONT_KNOW])
        return AnswerStream(chunks, lambda text, first: self._finish(plan, text, first))

    def _fit_prompt(self, question: str, hits: list[Hit]) -> list[dict[str, str]]:
        """The prompt, with the question (then passages) shortened until it fits the model's context."""
        cfg = self.config.answer
        limit = getattr(self.generator, "max_positions", None)
        messages = build_messages(question, hits, cfg.passage_chars)
        if limit is None:
            return messages
        budget = limit - cfg.max_new_tokens
        while len(self.generator.encode(messages)) >= budget and (len(question) > 200 or len(hits) > 1):
            if len(question) > 200:
                question = question[: len(question) // 2]
            else:
                hits = hits[:-1]
            messages = build_messages(question, hits, cfg.passage_chars)
        return messages

    def _plan(self, question: str, history: Sequence[Turn] | None) -> _Plan:
        start = time.perf_counter()
        if not isinstance(question, str) or not question.strip():
            raise EmptyQuestionError("the question is empty: type a question for the bot")
        question = question.strip()
        notice = None
        limit = self.config.max_question_chars
        if len(question) > limit:
            question = question[:limit]
            notice = TRUNCATION_NOTICE.format(limit=limit)
        query = rewrite_question(question, history, self.config.rewrite)
        hits = self.retriever.search(query, k=self.config.top_k)
        used = [h for h in hits if not looks_like_injection(f"{h.entry.question}\n{h.entry.text}")]
        dropped = [h.id for h in hits if h not in used]
        if dropped:
            logger.warning("Dropped KB entries that read as instructions", extra={"ids": dropped})
        confidence = self.calibration.confidence(used)
        route = self.calibration.route(used, confidence)
        intent, intent_conf = self.predict_intent(question)
        used = used[:1] if route == "faq" else used[: self.config.answer.passages]
        return _Plan(
            question, query, hits, used, dropped, confidence, route, intent, intent_conf, notice, start
        )

    def _finish(self, plan: _Plan, text: str, first: float | None) -> tuple[Answer, str]:
        now = time.perf_counter()
        route, sources, suffix = plan.route, [], ""
        if route == "generate":
            text, suffix, cited = finalize_citations(text, plan.used)
            by_id = {h.id: h for h in plan.used}
            sources = [Source.from_hit(by_id[i]) for i in cited]
            if not text.strip() or _DONT_KNOW_RE.search(text):
                # The model itself found no answer in the passages: hand off rather than guess.
                route, text, sources, suffix = "handoff", DONT_KNOW, [], ""
        elif route == "faq":
            sources = [Source.from_hit(plan.used[0])]
        answer = Answer(
            text=text,
            sources=sources,
            confidence=plan.confidence,
            handoff=route == "handoff",
            intent=plan.intent,
            intent_confidence=plan.intent_confidence,
            latency_ms=1000 * (now - plan.start),
            ttft_ms=1000 * ((first or now) - plan.start),
            route=route,
            query=plan.query,
            related=[Source.from_hit(h) for h in plan.hits],
            notice=plan.notice,
            dropped=plan.dropped,
        )
        logger.info(
            "Answered",
            extra={"route": route, "confidence": plan.confidence, "latency_ms": answer.latency_ms},
        )
        return answer, suffix


__all__ = ["Answer", "AnswerStream", "EmptyQuestionError", "Source", "SupportBot"]
