"""The support bot: rewrite → hybrid retrieve → confidence gate → verbatim FAQ, grounded answer or hand-off.

An answer states only what its cited sources say. When the gate does not quote a curated FAQ
answer, the bot quotes the passage sentences that best answer the question (route ``extract``,
:mod:`core.extractive`), each cited; a KB that enables generation (``answer.mode: generate``)
gets answers written by the answer model, of which only the sentences that the grounding
verifier (:mod:`core.grounding`) finds supported by a cited passage are kept; when too little is
left, the extractive answer is shown instead. Nothing the verifier has not checked reaches the
agent, so a generated answer is not streamed token by token.

A curated FAQ answer is quoted only when it mentions the question's specifics (``gate.specifics``:
names such as "Canada" or "UPS" by default; :mod:`core.lexical_coverage`): "Do you ship to
Canada?" matches "Do you ship internationally?" closely, but its "Yes, we ship to 28 countries in
Europe" does not answer it. Such a question falls to the passages instead, and when the quoted
sentences do not mention the specific either, the bot hands off (reason ``not_covered``, the
terms in :attr:`Answer.uncovered`) with its confidence lowered by ``gate.uncovered_penalty``.

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

from apps.customer_service.answering import (
    answer_confidence,
    answer_mode,
    cite_sentences,
    evidence_text,
    extractive_passages,
)
from apps.customer_service.confidence import Calibration, Route
from apps.customer_service.config import BotConfig
from apps.customer_service.handoff import HandoffReason
from apps.customer_service.human_request import asks_for_human
from apps.customer_service.knowledge_base import KnowledgeBase
from apps.customer_service.prompts import (
    DONT_KNOW,
    HUMAN_REQUESTED,
    NOT_COVERED,
    TRUNCATION_NOTICE,
    WITH_AGENT,
    WITH_QUEUE,
    build_messages,
    finalize_citations,
    passage_text,
)
from apps.customer_service.retrieval import Hit, Retriever
from apps.customer_service.rewrite import rewrite_question
from apps.customer_service.served_models import answer_adapter_path, intent_model_path
from core.control_chars import strip_control
from core.embeddings import Embedder
from core.extractive import PickedSentence, SentencePicker
from core.generation import GenerationUnavailableError
from core.grounding import GroundingVerifier, Verification, strip_citations
from core.injection import check_output
from core.lexical_coverage import Specific, TermStats, uncovered_specifics

logger = logging.getLogger(__name__)

Turn = Mapping[str, str]
BUSY_HANDOFF = (
    "The answer model is busy right now, so this question is handed to you: the most relevant "
    "knowledge-base entries are listed below as sources."
)
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
    text: str = ""

    @classmethod
    def from_hit(cls, hit: Hit) -> Source:
        """The source view of a retrieval hit (``text`` is the cited passage or FAQ answer)."""
        return cls(
            hit.id,
            hit.title,
            hit.url,
            round(hit.score, 4),
            hit.entry.kind,
            hit.scores.get("dense"),
            hit.entry.text,
        )


@dataclass
class Answer:
    """What the bot answered and why.

    Attributes:
        text: The answer (a verbatim FAQ answer, a generated cited answer, or the hand-off message).
        sources: Cited entries (empty on hand-off).
        confidence: Confidence in the *answer*, in ``[0, 1]``: the retrieval confidence, lowered when
            the quoted sentences match the question weakly or a generated answer lost sentences
            to verification (:func:`apps.customer_service.answering.answer_confidence`).
        handoff: Whether a human agent should take over.
        handoff_reason: Why, when ``handoff`` (a :class:`~apps.customer_service.handoff.HandoffReason`
            value: ``low_confidence``, ``out_of_scope``, ``asked_for_human``, ``deadline`` or
            ``not_covered``).
        intent: Predicted intent label (``None`` without an intent model).
        intent_confidence: Its probability.
        latency_ms: Time to the full answer.
        ttft_ms: Time to the first text chunk.
        route: ``faq`` (curated answer verbatim), ``extract`` (quoted passage sentences),
            ``generate`` (verified generated answer) or ``handoff``.
        query: The retrieval query (after follow-up rewriting).
        related: The top hits considered, also on hand-off, for the agent.
        notice: A message for the user (e.g. the question was truncated).
        dropped: Ids of retrieved entries left out because their text reads as instructions.
        retrieval_confidence: The gate's confidence that the retrieved entries answer the question.
        evidence: The quoted sentences of an extractive answer (``source_id``, ``text``, ``start``,
            ``end`` in the passage, ``score``), for highlighting in the UI.
        verification: For generated answers, the verifier's verdict (sentences, supported, dropped
            with reasons, ``used``: whether the generated text was shown, and ``generated``: the
            model's text before verification, for audits; never shown as an answer).
        suggestion: On hand-off, a draft for the agent who takes over: the quoted sentences (or the
            FAQ answer) the bot would offer from the retrieved entries, with ``[id]`` citations;
            empty when nothing retrieved is close enough (out of scope). Never shown to the customer.
        suggestion_sources: The entries the suggestion quotes.
        uncovered: The question's specifics (as written, e.g. ``Canada``) that the FAQ the gate
            matched does not mention; on a ``not_covered`` hand-off, those the quoted sentences
            did not mention either. Empty when the answer covers every specific.
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
    retrieval_confidence: float = 0.0
    evidence: list[dict[str, Any]] = field(default_factory=list)
    verification: dict[str, Any] | None = None
    handoff_reason: str | None = None
    suggestion: str = ""
    suggestion_sources: list[Source] = field(default_factory=list)
    uncovered: list[str] = field(default_factory=list)

    def to_json(self, question: str | None = None) -> dict[str, Any]:
        """The ``aigc support ask --json`` payload (with ``question`` first when given)."""
        payload = {} if question is None else {"question": question}
        return payload | {
            "answer": self.text,
            "route": self.route,
            "sources": [
                {"id": s.id, "title": s.title, "score": s.score, "text": s.text} for s in self.sources
            ],
            "confidence": round(self.confidence, 4),
            "handoff": self.handoff,
            "handoff_reason": self.handoff_reason,
            "uncovered": self.uncovered,
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
        # ``finish(streamed text, time of the first chunk)`` returns the answer and any text the
        # stream must still emit.
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
    text: str = ""
    sources: list[Hit] = field(default_factory=list)
    answer_confidence: float = 0.0
    evidence: list[PickedSentence] = field(default_factory=list)
    verification: Verification | None = None
    generated_used: bool = False
    generated: str = ""
    reason: str | None = None
    gate_route: Route = "handoff"
    suggestion: str = ""
    suggestion_sources: list[Hit] = field(default_factory=list)
    uncovered: list[Specific] = field(default_factory=list)


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
            else the active refreshed version's, else ``$AIGC_DATA_DIR/support/intents`` when it
            exists; none is fine; see :mod:`apps.customer_service.served_models`).
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
        self._picker: SentencePicker | None = None
        self._verifier: GroundingVerifier | None = None
        self._term_stats: TermStats | None = None

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
            adapter = answer_adapter_path(cfg.adapter, cfg.model)
            self._generator = Generator(cfg.model, adapter, backend=cfg.backend)  # type: ignore[arg-type]
        return self._generator

    @property
    def intent_model(self) -> Any:
        """The intent classifier, or ``None`` when none is configured or it cannot be loaded."""
        if not self._intent_loaded:
            self._intent_loaded = True
            path = intent_model_path(self.config.intent_model)
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
        if plan.route == "extract":
            chunks: Iterator[str] = self._answer_from_passages(plan)
        elif plan.route == "faq":
            plan.text, plan.sources, plan.answer_confidence = (
                plan.used[0].entry.text,
                plan.used[:1],
                plan.confidence,
            )
            chunks = iter([plan.text])
        else:
            plan.text = HUMAN_REQUESTED if plan.reason == HandoffReason.ASKED_FOR_HUMAN else DONT_KNOW
            self._suggest(plan)
            chunks = iter([plan.text])
        return AnswerStream(chunks, lambda text, first: self._finish(plan, first))

    def held(self, question: str, reason: str | None, taken: bool) -> AnswerStream:
        """The reply to a question asked while a person has the conversation (its hand-off case is
        waiting or taken): the bot retrieves and answers nothing itself, which could contradict the
        agent, and says who will answer (:data:`~apps.customer_service.prompts.WITH_QUEUE`, or
        :data:`~apps.customer_service.prompts.WITH_AGENT` once an agent took it). The answer is a
        hand-off with the open case's ``reason``; stored, the question joins that case.

        Raises:
            EmptyQuestionError: The question is empty.
        """
        start = time.perf_counter()
        question, notice = self._question(question)
        text = WITH_AGENT if taken else WITH_QUEUE

        def finish(_streamed: str, first: float | None) -> tuple[Answer, str]:
            now = time.perf_counter()
            answer = Answer(
                text=text,
                sources=[],
                confidence=0.0,
                handoff=True,
                handoff_reason=reason,
                route="handoff",
                query=question,
                notice=notice,
                latency_ms=(now - start) * 1000,
                ttft_ms=((first or now) - start) * 1000,
            )
            return answer, ""

        return AnswerStream(iter([text]), finish)

    def compose(self, question: str, hits: Sequence[Hit], generate: bool = False) -> Answer:
        """A grounded answer to ``question`` from the given ``hits``: no retrieval, no confidence gate.

        For drafting an answer from chosen passages (e.g. an FAQ answer for a group of questions the
        bot could not answer). Entries the injection screen flagged are left out, as in
        :meth:`stream`. With ``generate`` the answer model writes the answer and only the sentences
        the grounding verifier supports are kept (route ``generate``); otherwise, or when the model
        is missing or busy or too little of its text is supported, the best passage sentences are
        quoted (route ``extract``) and ``notice`` says why generation was not used. Route
        ``handoff`` means no passage sentence answers the question.

        Raises:
            EmptyQuestionError: The question is empty.
        """
        start = time.perf_counter()
        question, _notice = self._question(question)
        hits = list(hits)
        used = [h for h in hits if not self.kb.is_flagged(h.entry)][: self.config.answer.passages]
        dropped = [h.id for h in hits if self.kb.is_flagged(h.entry)]
        plan = _Plan(question, question, hits, used, dropped, 1.0, "extract", None, None, None, start)
        if not used:
            plan.route, plan.text = "handoff", DONT_KNOW
            return self._finish(plan, None)[0]
        if generate:
            try:
                self._generate_verified(plan)
            except FileNotFoundError as err:  # the answer model is not installed
                logger.warning("Answer model unavailable; quoting passages", extra={"error": str(err)})
                plan.notice = f"the answer model is unavailable ({err})"
            if plan.route == "handoff":  # the generation queue was busy: quote instead
                plan.route, plan.notice = "extract", "the answer model was busy"
            elif not plan.generated_used and plan.notice is None:
                plan.notice = "too little of the generated text was supported by the passages"
        if not plan.generated_used:
            self._extract(plan)
        return self._finish(plan, None)[0]

    # ------------------------------------------------------------------------------ grounded answers
    @property
    def answer_mode(self) -> str:
        """``extractive`` or ``generate``: the KB's ``answering.json``, else ``config.answer.mode``."""
        return answer_mode(self.kb.path, self.config.answer)

    @property
    def picker(self) -> SentencePicker:
        """The extractive sentence picker (on the retriever's encoder)."""
        if self._picker is None:
            cfg = self.config.answer
            self._picker = SentencePicker(
                self.retriever.embedder,
                per_passage=cfg.sentences_per_passage,
                max_passages=cfg.passages,
                max_chars=cfg.max_answer_chars,
                passage_margin=cfg.passage_margin,
            )
        return self._picker

    @property
    def verifier(self) -> GroundingVerifier:
        """The grounding verifier of generated answers (on the retriever's encoder)."""
        if self._verifier is None:
            cfg = self.config.answer
            self._verifier = GroundingVerifier(
                self.retriever.embedder, cfg.support_threshold, word_coverage=cfg.word_coverage
            )
        return self._verifier

    def _answer_from_passages(self, plan: _Plan) -> Iterator[str]:
        """Yield the grounded answer (one chunk: nothing unverified is streamed) and fill ``plan``."""
        if self.answer_mode == "generate":
            self._generate_verified(plan)
        if not plan.generated_used and plan.route != "handoff":
            self._extract(plan)
        self._check_specifics(plan)
        yield plan.text

    @property
    def term_stats(self) -> TermStats:
        """Document frequencies of the KB's words (question and content of every entry it may quote).

        Entries that read as instructions are left out: they are never quoted, and a planted line
        ("... tell them we ship to Canada") must not make a name look covered by the KB.
        """
        if self._term_stats is None:
            self._term_stats = TermStats.from_texts(
                f"{e.question_field()}\n{e.content_field()}"
                for e in self.kb.entries
                if not self.kb.is_flagged(e)
            )
        return self._term_stats

    def uncovered_specifics(self, question: str, texts: Sequence[str]) -> list[Specific]:
        """The salient specifics of ``question`` (``gate.specifics``) that ``texts`` never mention."""
        gate = self.config.gate
        if not gate.specific_kinds:
            return []
        return uncovered_specifics(
            question, texts, self.term_stats, gate.specific_kinds, max_doc_share=gate.max_term_share
        )

    def _check_specifics(self, plan: _Plan) -> None:
        """Hand off (``not_covered``) when a passage answer does not mention a specific of the question.

        Covering text: the quoted (or verified generated) sentences and the cited entries' questions
        or titles. A low-confidence hand-off after an FAQ fallback is reported as ``not_covered``
        too, since the uncovered specific is why the FAQ was not quoted.
        """
        if plan.route == "handoff":
            if plan.uncovered and plan.reason == HandoffReason.LOW_CONFIDENCE:
                self._hand_off_uncovered(plan, plan.uncovered)
            return
        covering = [strip_citations(plan.text, [h.id for h in plan.used])]
        covering += [h.entry.question_field() for h in plan.sources]
        missing = self.uncovered_specifics(plan.question, covering)
        plan.uncovered = missing
        if missing:
            self._hand_off_uncovered(plan, missing)

    def _hand_off_uncovered(self, plan: _Plan, missing: list[Specific]) -> None:
        plan.uncovered = missing
        terms = [f"\u201c{s.text}\u201d" for s in missing]
        named = terms[0] if len(terms) == 1 else f"{', '.join(terms[:-1])} or {terms[-1]}"
        plan.route, plan.text = "handoff", NOT_COVERED.format(terms=named)
        plan.sources, plan.evidence, plan.generated_used = [], [], False
        plan.reason = HandoffReason.NOT_COVERED
        # A hand-off never reads as more certain than the gate's own hand-off threshold.
        penalised = plan.confidence * self.config.gate.uncovered_penalty
        plan.answer_confidence = min(penalised, self.calibration.handoff_threshold)
        logger.info("Specifics not covered; handing off", extra={"terms": [s.text for s in missing]})
        self._suggest(plan)

    def _extract(self, plan: _Plan) -> None:
        """Quote the passage sentences that answer the question (or hand off when none does)."""
        picked = self.picker.pick(plan.question, extractive_passages(plan.used))
        if not picked or max(p.score for p in picked) < self.config.answer.min_sentence_score:
            plan.route, plan.text, plan.sources, plan.answer_confidence = (
                "handoff",
                DONT_KNOW,
                [],
                plan.confidence,
            )
            plan.reason = HandoffReason.LOW_CONFIDENCE
            self._suggest(plan, picked)
            return
        by_id = {h.id: h for h in plan.used}
        plan.route = "extract"
        plan.evidence = picked
        plan.text = cite_sentences([(p.source_id, p.text) for p in picked])
        plan.sources = [by_id[i] for i in dict.fromkeys(p.source_id for p in picked)]
        plan.answer_confidence = answer_confidence(plan.confidence, picked)

    def _suggest(self, plan: _Plan, picked: list[PickedSentence] | None = None) -> None:
        """Fill ``plan.suggestion``: the draft a human agent sees beside the reply box on hand-off.

        The FAQ answer the gate would have quoted, else the best passage sentences (``picked``, or
        picked now); nothing for an out-of-scope question, whose retrieved entries are unrelated.
        """
        if not plan.used or plan.reason == HandoffReason.OUT_OF_SCOPE:
            return
        if plan.gate_route == "faq":
            plan.suggestion, plan.suggestion_sources = plan.used[0].entry.text, plan.used[:1]
            return
        if picked is None:
            picked = self.picker.pick(plan.question, extractive_passages(plan.used))
        if not picked:
            return
        by_id = {h.id: h for h in plan.used}
        plan.suggestion = cite_sentences([(p.source_id, p.text) for p in picked])
        plan.suggestion_sources = [by_id[i] for i in dict.fromkeys(p.source_id for p in picked)]

    def _generate_verified(self, plan: _Plan) -> None:
        """Generate, keep the supported sentences; ``plan.generated_used`` says whether it is shown."""
        cfg = self.config.answer
        messages = self._fit_prompt(plan.question, plan.used)
        try:
            raw = "".join(
                self.generator.stream(
                    messages, max_new_tokens=cfg.max_new_tokens, repetition_penalty=cfg.repetition_penalty
                )
            )
        except GenerationUnavailableError as err:
            # The shared generation queue is full or the deadline passed: hand off with the sources.
            logger.warning("Generated answer unavailable; handing off", extra={"reason": str(err)})
            plan.route, plan.text, plan.sources, plan.answer_confidence = (
                "handoff",
                BUSY_HANDOFF,
                list(plan.used),
                plan.confidence,
            )
            plan.notice = f"Handed off: {err}."
            plan.reason = HandoffReason.DEADLINE
            self._suggest(plan)
            return
        text, _, cited = finalize_citations(raw, plan.used)
        plan.generated = text
        if not raw.strip() or _DONT_KNOW_RE.search(raw):
            # The model itself found no answer in the passages: quote them rather than guess.
            plan.verification = Verification()
            return
        by_id = {h.id: h for h in plan.used}
        result = self.verifier.verify(text, {i: evidence_text(by_id[i]) for i in cited})
        plan.verification = result
        if not result.kept or result.supported_share < cfg.min_supported_share:
            logger.info("Generated answer failed verification", extra=result.to_dict())
            return
        text = cite_sentences([(c.source_id or cited[0], c.sentence) for c in result.kept])
        if problems := check_output(text, [passage_text(by_id[i]) for i in cited] + [plan.question]):
            # Output check (issue 12): a URL, contact, code or instruction no cited passage holds.
            logger.warning("Generated answer withheld", extra={"problems": [asdict(p) for p in problems]})
            return
        plan.generated_used = True
        plan.route = "generate"
        plan.text = text
        plan.sources = [by_id[i] for i in dict.fromkeys(c.source_id or cited[0] for c in result.kept)]
        plan.answer_confidence = answer_confidence(plan.confidence, supported_share=result.supported_share)

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

    def _question(self, question: str) -> tuple[str, str | None]:
        """The question stripped and cut to ``config.max_question_chars``, and the notice when cut.

        Raises:
            EmptyQuestionError: The question is empty.
        """
        question = strip_control(question) if isinstance(question, str) else ""  # NUL, escapes: no text
        if not question.strip():
            raise EmptyQuestionError("the question is empty: type a question for the bot")
        question, limit = question.strip(), self.config.max_question_chars
        if len(question) > limit:
            return question[:limit], TRUNCATION_NOTICE.format(limit=limit)
        return question, None

    def _plan(self, question: str, history: Sequence[Turn] | None) -> _Plan:
        start = time.perf_counter()
        question, notice = self._question(question)
        query = rewrite_question(question, history, self.config.rewrite)
        hits = self.retriever.search(query, k=self.config.top_k)
        # Prompt-injection screen (issue 12): verdicts stored in the KB at index time, every field.
        used = [h for h in hits if not self.kb.is_flagged(h.entry)]
        dropped = [h.id for h in hits if h not in used]
        if dropped:
            logger.warning("Dropped KB entries that read as instructions", extra={"ids": dropped})
        confidence = self.calibration.confidence(used)
        gate_route = route = self.calibration.route(used, confidence)
        uncovered: list[Specific] = []
        if route == "faq":
            top = used[0].entry
            uncovered = self.uncovered_specifics(question, [top.question_field(), top.content_field()])
            if uncovered:
                # Close to the question but silent on what it names: answer from the passages,
                # and only if the quoted sentences name it (``_check_specifics``).
                route = "extract"
        intent, intent_conf = self.predict_intent(question)
        used = used[:1] if route == "faq" else used[: self.config.answer.passages]
        reason = None
        if self.config.gate.detect_human_request and asks_for_human(question):
            route, reason = "handoff", HandoffReason.ASKED_FOR_HUMAN
        elif route == "handoff":
            far = confidence < self.config.gate.out_of_scope_ratio * self.calibration.handoff_threshold
            reason = HandoffReason.OUT_OF_SCOPE if not used or far else HandoffReason.LOW_CONFIDENCE
        plan = _Plan(
            question, query, hits, used, dropped, confidence, route, intent, intent_conf, notice, start
        )
        plan.reason, plan.gate_route, plan.uncovered = reason, gate_route, uncovered
        return plan

    def _finish(self, plan: _Plan, first: float | None) -> tuple[Answer, str]:
        now = time.perf_counter()
        handed_off = plan.route == "handoff"
        verification = None
        if plan.verification is not None:
            verification = plan.verification.to_dict() | {
                "used": plan.generated_used,
                "generated": plan.generated,
            }
        answer = Answer(
            text=plan.text,
            sources=[Source.from_hit(h) for h in plan.sources],
            confidence=plan.answer_confidence,
            handoff=handed_off,
            intent=plan.intent,
            intent_confidence=plan.intent_confidence,
            latency_ms=1000 * (now - plan.start),
            ttft_ms=1000 * ((first or now) - plan.start),
            route=plan.route,
            query=plan.query,
            related=[Source.from_hit(h) for h in plan.hits],
            notice=plan.notice,
            dropped=plan.dropped,
            retrieval_confidence=plan.confidence,
            evidence=[p.to_dict() for p in plan.evidence],
            verification=verification,
            handoff_reason=str(plan.reason or HandoffReason.LOW_CONFIDENCE) if handed_off else None,
            suggestion=plan.suggestion if handed_off else "",
            suggestion_sources=[Source.from_hit(h) for h in plan.suggestion_sources] if handed_off else [],
            uncovered=[s.text for s in plan.uncovered],
        )
        logger.info(
            "Answered",
            extra={
                "route": plan.route,
                "handoff_reason": answer.handoff_reason,
                "confidence": answer.confidence,
                "latency_ms": answer.latency_ms,
            },
        )
        return answer, ""


__all__ = ["Answer", "AnswerStream", "EmptyQuestionError", "Source", "SupportBot"]
