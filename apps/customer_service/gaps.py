"""The knowledge-gap report: what customers ask that the knowledge base does not answer.

Questions come from the conversation store (answers that handed off, answers below
``GapsConfig.low_confidence`` and answers an agent rated down, optionally only since a date; only
conversations on the bot's knowledge base, as are the agents' corrections that may become drafts) or
from a file of questions (column ``question``) that the bot answers one by one: only those it
cannot answer (hand-off, or confidence below ``low_confidence``) count. Stored questions are asked
again too (``recheck``), so a gap that an approved FAQ answer has closed drops out of the next report.

The questions are embedded with the KB's encoder and clustered by meaning
(:func:`core.clustering.cluster_vectors`: agglomerative with a cosine distance threshold, or
HDBSCAN; no cluster count). Questions in no cluster of at least two are ``unclustered``. Each
cluster gets:

* a **label**: its most distinctive terms (class-based TF-IDF);
* its **questions**, the most typical first;
* the **nearest** KB entries to its centroid;
* a **draft FAQ answer** (:class:`Draft`): an agent's correction of a question in the cluster when
  there is one (the closest), else an answer written by the answer model from the nearest passages
  and kept only where the grounding verifier supports it, with ``[id]`` citations
  (:meth:`SupportBot.compose <apps.customer_service.bot.SupportBot.compose>`); when generation is
  off, unavailable or unsupported, the best passage sentences are quoted instead and the draft's
  ``note`` says so. Drafts are data: the prompt-injection screen reads each draft with its
  question, and a flagged draft cannot be approved as it is (:mod:`apps.customer_service.gap_review`).

Example:
    >>> bot = SupportBot.from_dir("kb")
    >>> report = gaps_from_file(bot, "questions.csv")
    >>> [(c.label, c.size) for c in report.clusters]
    [('gift wrap', 4), ('loyalty points', 3)]
    >>> report.to_json()["clusters"][0]["draft_sources"]
    ['faq.csv#12']
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from apps.customer_service.bot import Answer, SupportBot
from apps.customer_service.config import GapsConfig
from apps.customer_service.entries import Entry
from apps.customer_service.handoff import HandoffReason
from apps.customer_service.injection_screen import screen_entry
from apps.customer_service.retrieval_eval import read_questions
from apps.customer_service.storage import Correction, SupportStore
from core.clustering import centrality_order, centroid, class_tfidf_terms, cluster_vectors, mean_distances
from core.grounding import strip_citations

logger = logging.getLogger(__name__)

#: How a draft answer was written.
DRAFT_METHODS = ("correction", "generated", "extractive", "none")


@dataclass(frozen=True)
class GapQuestion:
    """A question the bot could not answer.

    Attributes:
        text: The question.
        reasons: ``handoff``, ``low_confidence``, ``thumbs_down`` (stored answers) or ``unanswered``
            (a question from a file that the bot could not answer now).
        message_id: The stored answer it comes from, if any.
        asked_at: When it was asked, if known.
    """

    text: str
    reasons: tuple[str, ...]
    message_id: int | None = None
    asked_at: datetime | None = None


@dataclass(frozen=True)
class Draft:
    """A draft FAQ answer for a cluster.

    Attributes:
        answer: The text (``None`` when nothing in the KB answers the cluster: write one).
        sources: Ids it rests on: cited KB entries, or ``feedback-{message id}`` for a correction
            (the id ``aigc support export-feedback`` gives it).
        method: ``correction``, ``generated``, ``extractive`` or ``none``.
        note: Why the draft is what it is (e.g. why generation was not used).
        flagged: Whether the injection screen reads the draft or its question as instructions.
        flag_reason: The screen's reason (``rule:<name>`` or ``model``) and field.
    """

    answer: str | None
    sources: list[str]
    method: str
    note: str | None = None
    flagged: bool = False
    flag_reason: str | None = None


@dataclass
class GapCluster:
    """One cluster of unanswered questions with its label, nearest entries and draft answer."""

    label: str
    questions: list[str]
    nearest: list[str]
    draft: Draft

    @property
    def size(self) -> int:
        """Number of questions in the cluster."""
        return len(self.questions)

    def to_json(self) -> dict[str, Any]:
        """``label``, ``size``, ``questions``, ``nearest``, ``draft_answer``, ``draft_sources``."""
        return {
            "label": self.label,
            "size": self.size,
            "questions": list(self.questions),
            "nearest": list(self.nearest),
            "draft_answer": self.draft.answer,
            "draft_sources": list(self.draft.sources),
        }


@dataclass
class GapReport:
    """Clusters of unanswered questions (largest first) and the questions in no cluster.

    Attributes:
        clusters: The clusters, largest first.
        unclustered: Questions in no cluster of at least ``min_cluster_size``.
        asked: Questions considered (rows of the file, or stored answers read).
        source: ``store`` or ``file``.
        since: The ``--since`` bound of stored questions, if any.
        seconds: Time taken.
    """

    clusters: list[GapCluster]
    unclustered: list[str]
    asked: int
    source: str
    since: datetime | None = None
    seconds: float = 0.0

    @property
    def gaps(self) -> int:
        """Questions the bot could not answer (clustered or not)."""
        return sum(c.size for c in self.clusters) + len(self.unclustered)

    def to_json(self) -> dict[str, Any]:
        """``{"clusters": [...], "unclustered": [...]}`` (the ``aigc support gaps --json`` payload)."""
        return {"clusters": [c.to_json() for c in self.clusters], "unclustered": list(self.unclustered)}

    def methods(self) -> dict[str, int]:
        """How many drafts each method wrote."""
        counts = dict.fromkeys(DRAFT_METHODS, 0)
        for cluster in self.clusters:
            counts[cluster.draft.method] += 1
        return counts


# ------------------------------------------------------------------------------- collecting
def is_unanswered(answer: Answer, low_confidence: float) -> bool:
    """Whether ``answer`` counts as a gap: a hand-off, or a confidence below ``low_confidence``.

    A hand-off because the customer asked for a person or the answer model was busy is a gap only
    when the bot had nothing to suggest: otherwise the KB holds the answer.
    """
    if answer.handoff and answer.handoff_reason in (HandoffReason.ASKED_FOR_HUMAN, HandoffReason.DEADLINE):
        return not answer.suggestion
    return answer.handoff or answer.confidence < low_confidence


def unanswered(
    bot: SupportBot, questions: Sequence[str], low_confidence: float, show_progress_bar: bool = False
) -> list[GapQuestion]:
    """The ``questions`` the bot cannot answer now (see :func:`is_unanswered`), in order."""
    from core.progress import progress_bar

    found = []
    for question in progress_bar(questions, desc="Asking", disable=not show_progress_bar):
        if is_unanswered(bot.answer(question), low_confidence):
            found.append(GapQuestion(question, ("unanswered",)))
    return found


def stored_gaps(
    store: SupportStore,
    bot: SupportBot | None,
    config: GapsConfig,
    since: datetime | None = None,
    kb: str | Path | None = None,
) -> tuple[list[GapQuestion], int]:
    """Stored hand-offs, low-confidence and rated-down answers (the newest ``max_questions``).

    With ``config.recheck`` and a ``bot``, each question is asked again: it still counts when the
    bot cannot answer it now, or (rated down) when it still gives the answer the agent rated down.

    Args:
        store: The conversation store.
        bot: The bot that re-asks the questions (``None``: no recheck).
        config: ``low_confidence``, ``max_questions`` and ``recheck``.
        since: Only answers given at or after this time.
        kb: Only conversations on this knowledge base (``None``: every KB's).

    Returns:
        The gap questions (oldest first) and how many stored answers were read.
    """
    rows = store.gap_candidates(since, config.low_confidence, limit=config.max_questions, kb=kb)
    found = []
    now: dict[str, Answer] = {}  # one answer per distinct question
    for row in rows:
        reasons = tuple(
            reason
            for reason, hit in (
                ("handoff", row["handoff"]),
                ("low_confidence", not row["handoff"] and (row["confidence"] or 0.0) < config.low_confidence),
                ("thumbs_down", (row["rating"] or 0) < 0),
            )
            if hit
        )
        question = (row["question"] or "").strip()
        if not question:
            continue
        if config.recheck and bot is not None:
            if question not in now:
                now[question] = bot.answer(question)
            answer = now[question]
            same_rejected = "thumbs_down" in reasons and _plain(answer.text) == _plain(row["answer"] or "")
            if not is_unanswered(answer, config.low_confidence) and not same_rejected:
                continue
        found.append(GapQuestion(question, reasons, row["message_id"], row["created_at"]))
    return found, len(rows)


def _plain(text: str) -> str:
    return strip_citations(text).lower()


def _kb_of(bot: SupportBot) -> Path | None:
    """The directory of the bot's KB: stored questions and corrections are read for it alone
    (``None`` for a KB that was never saved, which reads every KB's)."""
    return bot.kb.path


# ------------------------------------------------------------------------------- reporting
def find_gaps(
    bot: SupportBot,
    questions: Sequence[GapQuestion],
    config: GapsConfig | None = None,
    corrections: Sequence[Correction] = (),
    *,
    asked: int | None = None,
    source: str = "file",
    since: datetime | None = None,
) -> GapReport:
    """Cluster ``questions`` and describe each cluster (label, nearest entries, draft answer).

    Args:
        bot: The bot over the KB (its encoder, retriever and answer model are used).
        questions: Questions the bot could not answer.
        config: Clustering, labels and drafting settings.
        corrections: Agents' corrected answers; each joins the cluster whose questions are closest
            to its question on average, when that mean cosine distance is within the clustering
            threshold (average linkage would have merged it).
        asked: Questions considered before filtering (for the report; default ``len(questions)``).
        source: ``store`` or ``file``.
        since: The time bound of stored questions, if any.
    """
    start = time.perf_counter()
    config = config or GapsConfig()
    texts = [q.text for q in questions]
    report = GapReport([], [], len(texts) if asked is None else asked, source, since)
    if not texts:
        report.seconds = round(time.perf_counter() - start, 3)
        return report
    embedder = bot.retriever.embedder
    vectors = embedder.encode(texts)
    labels = cluster_vectors(vectors, config.clustering)
    terms = class_tfidf_terms(texts, labels, top_n=config.label_terms)
    by_cluster = _corrections_by_cluster(vectors, labels, corrections, embedder, config)
    n_clusters = int(labels.max()) + 1 if labels.size and labels.max() >= 0 else 0
    generate = config.draft == "generate"
    passages = max(config.nearest, bot.config.answer.passages)
    for c in range(n_clusters):
        rows = centrality_order(vectors, np.flatnonzero(labels == c).tolist())
        members = [texts[r] for r in rows]
        hits = bot.retriever.search_vectors(centroid(vectors, rows), k=passages)[0]
        draft = draft_answer(bot, members[0], hits, by_cluster.get(c, []), generate, config.low_confidence)
        label = " · ".join(terms.get(c, [])) or members[0][:80]
        report.clusters.append(GapCluster(label, members, [h.id for h in hits[: config.nearest]], draft))
    report.unclustered = [t for t, c in zip(texts, labels, strict=True) if c < 0]
    report.seconds = round(time.perf_counter() - start, 3)
    logger.info(
        "Gap report",
        extra={
            "questions": len(texts),
            "clusters": n_clusters,
            "unclustered": len(report.unclustered),
            "drafts": report.methods(),
            "seconds": report.seconds,
        },
    )
    return report


def _corrections_by_cluster(
    vectors: np.ndarray,
    labels: np.ndarray,
    corrections: Sequence[Correction],
    embedder: Any,
    config: GapsConfig,
) -> dict[int, list[Correction]]:
    """Corrections per cluster, closest (then newest) first."""
    usable = [c for c in corrections if c.question.strip() and c.answer.strip()]
    if not usable or labels.max(initial=-1) < 0:
        return {}
    distances = mean_distances(vectors, labels, embedder.encode([c.question for c in usable]))
    ranked: dict[int, list[tuple[float, float, Correction]]] = {}
    for correction, row in zip(usable, distances, strict=True):
        best = int(row.argmin())
        if row[best] <= config.clustering.distance_threshold:
            ranked.setdefault(best, []).append(
                (float(row[best]), -correction.created_at.timestamp(), correction)
            )
    return {c: [item[2] for item in sorted(items, key=lambda t: t[:2])] for c, items in ranked.items()}


def draft_answer(
    bot: SupportBot,
    question: str,
    hits: Sequence[Any],
    corrections: Sequence[Correction] = (),
    generate: bool = True,
    min_match: float = 0.5,
) -> Draft:
    """The draft FAQ answer of a cluster whose most typical question is ``question``.

    An agent's correction (the first of ``corrections``) when there is one. Otherwise the passages
    of ``hits`` are first quoted (:meth:`SupportBot.compose`): when the quoted sentences match the
    question with a confidence under ``min_match`` (or none qualifies), the KB has nothing to draft
    from and the draft is empty (method ``none``: write the answer). Else, with ``generate``, the
    answer model writes the draft and only verified sentences are kept; when generation is off,
    unavailable or unsupported, the quoted sentences are the draft and its note says why. The draft
    and ``question`` are screened for prompt injection together, as the KB entry they would become.
    """
    if corrections:
        chosen = corrections[0]
        draft = Draft(
            chosen.answer.strip(),
            [f"feedback-{chosen.message_id}"],
            "correction",
            f"an agent's correction of: {chosen.question.strip()[:200]}",
        )
    else:
        draft = _grounded_draft(bot, question, hits, generate, min_match)
    if draft.answer is None:
        return draft
    verdict = screen_entry(
        Entry(
            id="gap-draft", kind="faq", question=question, text=strip_citations(draft.answer), title=question
        )
    )
    if verdict.flagged:
        logger.warning(
            "Gap draft reads as instructions", extra={"reason": verdict.reason, "field": verdict.field}
        )
        return Draft(
            draft.answer, draft.sources, draft.method, draft.note, True, f"{verdict.reason} ({verdict.field})"
        )
    return draft


def _grounded_draft(
    bot: SupportBot, question: str, hits: Sequence[Any], generate: bool, min_match: float
) -> Draft:
    quoted = bot.compose(question, hits, generate=False)
    if quoted.route == "handoff" or quoted.confidence < min_match:
        return Draft(
            None,
            [],
            "none",
            f"the nearest KB passages do not answer these questions (match {quoted.confidence:.2f}); "
            "write the answer",
        )
    if generate:
        written = bot.compose(question, hits, generate=True)
        if written.route == "generate":
            return Draft(
                written.text, [s.id for s in written.sources], "generated", "written by the answer model"
            )
        why = f"generation not used: {written.notice}"
    else:
        why = "generation is off"
    return Draft(quoted.text, [s.id for s in quoted.sources], "extractive", f"quoted passages ({why})")


# ------------------------------------------------------------------------------- entry points
def gaps_from_file(
    bot: SupportBot,
    path: str | Path,
    config: GapsConfig | None = None,
    store: SupportStore | None = None,
    show_progress_bar: bool = False,
) -> GapReport:
    """The gap report of a file of questions (column ``question``, read by core's table reader).

    Every question is answered by ``bot``; only those it cannot answer are clustered. Agents'
    corrections in ``store`` (when given) of conversations on the bot's KB may become drafts.

    Raises:
        FileNotFoundError: No such file.
        SourceError: A bad file (naming the row and field).
    """
    return gaps_from_questions(bot, read_questions(path), config, store, show_progress_bar)


def gaps_from_questions(
    bot: SupportBot,
    questions: Sequence[str],
    config: GapsConfig | None = None,
    store: SupportStore | None = None,
    show_progress_bar: bool = False,
) -> GapReport:
    """The gap report of ``questions`` already read (see :func:`gaps_from_file`)."""
    config = config or GapsConfig()
    found = unanswered(bot, questions, config.low_confidence, show_progress_bar)
    corrections = store.corrections(kb=_kb_of(bot)) if store is not None else []
    return find_gaps(bot, found, config, corrections, asked=len(questions), source="file")


def gaps_from_store(
    bot: SupportBot,
    store: SupportStore,
    config: GapsConfig | None = None,
    since: datetime | None = None,
) -> GapReport:
    """The gap report of the stored hand-offs, low-confidence and rated-down answers (``since``) of
    conversations on the bot's knowledge base; drafts may come from corrections on that KB only."""
    config = config or GapsConfig()
    kb = _kb_of(bot)
    found, read = stored_gaps(store, bot, config, since, kb=kb)
    corrections = store.corrections(kb=kb)
    return find_gaps(bot, found, config, corrections, asked=read, source="store", since=since)


__all__ = [
    "DRAFT_METHODS",
    "Draft",
    "GapCluster",
    "GapQuestion",
    "GapReport",
    "gaps_from_questions",
    "draft_answer",
    "find_gaps",
    "gaps_from_file",
    "gaps_from_store",
    "is_unanswered",
    "stored_gaps",
    "strip_citations",
    "unanswered",
]
