"""Retrieval confidence and the answer gate: verbatim FAQ, generated answer, or hand-off.

Confidence is a logistic function of the best hit's dense (cosine) score,
``sigmoid(weight * cosine + bias)``: fused hybrid scores are min-max normalised per query, so the
top hit always scores near 1 and says nothing about whether the KB answers the question, while the
cosine does. :func:`calibrate` fits ``weight`` and ``bias`` on validation questions, labelled
*answerable* when a gold id is among the passages the bot would use and *not* when the question is
out of scope or retrieval missed, and picks two thresholds:

* ``handoff_threshold``: the cut that best separates answerable from not (balanced accuracy);
  below it the bot says it does not know and hands off;
* ``verbatim_margin``: how far the top hit's fused score must lead the best hit answering another
  question (other curated answers to the same question are not competitors) for a curated
  FAQ hit to be returned as written: the smallest margin above which the top hit was right for at
  least ``verbatim_precision`` of the answered validation questions. On the sample queries the
  wrong top hits all led by < 0.25 (near-ties between two FAQs, or an FAQ and a policy passage),
  while a high cosine alone did not exclude them.

The result is saved as ``calibration.json`` in the KB directory (:meth:`Calibration.save`).

Scores cannot tell that a close FAQ is silent on what the question names ("Do you ship to Canada?"
against "Do you ship internationally?"): the bot checks that separately, on the question's words
(``gate.specifics``, :mod:`core.lexical_coverage`), before it quotes the FAQ :meth:`Calibration.route`
chose.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from apps.customer_service.config import KBConfig
from apps.customer_service.errors import KBFormatError, SourceError
from apps.customer_service.knowledge_base import CALIBRATION_FILE, KnowledgeBase
from apps.customer_service.retrieval import Hit, Retriever
from apps.customer_service.retrieval_eval import EvalQuery
from apps.customer_service.sources import Source
from core.config import write_json_atomic
from core.embeddings import Embedder
from core.errors import check_path_kind
from core.io.tables import read_rows

logger = logging.getLogger(__name__)

Route = Literal["faq", "extract", "generate", "handoff"]


@dataclass(frozen=True)
class Calibration:
    """Confidence mapping and thresholds.

    Attributes:
        weight: Logistic slope on the top hit's cosine score.
        bias: Logistic intercept.
        handoff_threshold: Confidence below which the bot hands off.
        verbatim_margin: Lead of the top hit's score over the second at or above which a top FAQ
            hit (with confidence above ``handoff_threshold``) is returned verbatim.
        fitted: Whether the values come from :func:`calibrate` (``False``: defaults).
        report: Validation counts and rates measured by :func:`calibrate`.
    """

    weight: float = 12.0
    bias: float = -6.0
    handoff_threshold: float = 0.5
    verbatim_margin: float = 0.25
    fitted: bool = False
    report: dict[str, Any] = field(default_factory=dict)

    def confidence(self, hits: Sequence[Hit]) -> float:
        """Confidence in ``[0, 1]`` that the hits answer the question (0 without hits)."""
        if not hits:
            return 0.0
        return _sigmoid(self.weight * top_cosine(hits) + self.bias)

    def route(self, hits: Sequence[Hit], confidence: float) -> Route:
        """``faq`` (verbatim), ``extract`` (answer from the passages) or ``handoff`` for these hits.

        The bot answers an ``extract`` route by quoting passage sentences, or, where generation is
        enabled for the KB, with a verified generated answer (route ``generate``).
        """
        if not hits or confidence < self.handoff_threshold:
            return "handoff"
        if hits[0].entry.kind == "faq" and margin(hits) >= self.verbatim_margin:
            return "faq"
        return "extract"

    def save(self, kb_dir: str | Path) -> Path:
        """Write ``calibration.json`` into ``kb_dir`` atomically."""
        path = Path(kb_dir) / CALIBRATION_FILE
        write_json_atomic(path, asdict(self))
        return path

    @classmethod
    def load(cls, kb_dir: str | Path) -> Calibration | None:
        """The calibration saved in ``kb_dir``, or ``None`` when there is none.

        Raises:
            ValueError: The file exists but is not a valid calibration.
        """
        path = Path(kb_dir) / CALIBRATION_FILE
        if not path.is_file():
            return None
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            return cls(**data)
        except (json.JSONDecodeError, TypeError) as err:
            raise ValueError(
                f"{path} is not a valid calibration file ({err}); delete it or recalibrate"
            ) from err


def top_cosine(hits: Sequence[Hit]) -> float:
    """The best dense score among the hits (the first hit's may be lower after fusion)."""
    return max(h.scores.get("dense", h.score) for h in hits)


def margin(hits: Sequence[Hit]) -> float:
    """Lead of the first hit's ranking score over the best hit that answers a *different* question.

    FAQ entries that share the first hit's question (several curated answers to one question, as in
    forum-style FAQs) are not competitors: they do not make the match less certain, so they are
    skipped. The first hit's score when nothing else competes.
    """
    if not hits:
        return 0.0
    top = hits[0].entry
    key = _question_key(top.question) if top.kind == "faq" else None
    for hit in hits[1:]:
        if key and hit.entry.kind == "faq" and _question_key(hit.entry.question) == key:
            continue
        return hits[0].score - hit.score
    return hits[0].score


def _question_key(question: str) -> str:
    return " ".join(question.lower().split())


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-max(min(x, 50.0), -50.0)))


def read_out_of_scope(path: str | Path) -> list[str]:
    """Questions from a CSV with a ``query`` column (questions the KB must not answer).

    Raises:
        FileNotFoundError: No such file.
        SourceError: Missing column, an empty query or no rows at all, naming the row.
    """
    path = check_path_kind(path, "file")
    if not path.is_file():
        raise FileNotFoundError(f"out-of-scope questions file {path} does not exist")
    questions = []
    for record in read_rows(path, columns=("query",), format="csv", row_base=0, error=SourceError):
        text = record.text("query")
        if not text:
            raise record.error("is empty", field="query")
        questions.append(text)
    if not questions:
        raise SourceError(path, "holds no questions (a header and no rows)")
    return questions


def calibrate(
    retriever: Retriever,
    in_scope: Sequence[EvalQuery],
    out_of_scope: Sequence[str],
    passages: int = 3,
    k: int = 5,
    verbatim_precision: float = 0.95,
) -> Calibration:
    """Fit the confidence mapping and thresholds on validation questions.

    Args:
        retriever: The retriever the bot uses.
        in_scope: Questions with gold KB ids.
        out_of_scope: Questions the KB cannot answer.
        passages: Passages the bot uses; an in-scope question is answerable when a gold id is among them.
        k: Hits retrieved per question.
        verbatim_precision: Top-1 precision required above the verbatim threshold.

    Returns:
        The fitted :class:`Calibration` (``report`` holds the validation rates).

    Raises:
        ValueError: No in-scope or no out-of-scope questions, or only one class after labelling.
    """
    from sklearn.linear_model import LogisticRegression

    if not in_scope or not out_of_scope:
        raise ValueError("calibration needs both in-scope and out-of-scope questions")
    texts = [q.query for q in in_scope] + list(out_of_scope)
    hits = retriever.search_many(texts, k=k)
    cosine = np.array([top_cosine(h) if h else 0.0 for h in hits])
    margins = np.array([margin(h) for h in hits])
    answerable = np.array(
        [any(h.id in q.gold_ids for h in row[:passages]) for q, row in zip(in_scope, hits, strict=False)]
        + [False] * len(out_of_scope)
    )
    top1 = np.array(
        [bool(row) and row[0].id in q.gold_ids for q, row in zip(in_scope, hits, strict=False)]
        + [False] * len(out_of_scope)
    )
    if answerable.all() or not answerable.any():
        raise ValueError("calibration needs both answerable and unanswerable questions after retrieval")
    model = LogisticRegression(C=100.0).fit(cosine[:, None], answerable)
    weight, bias = float(model.coef_[0, 0]), float(model.intercept_[0])
    conf = 1.0 / (1.0 + np.exp(-(weight * cosine + bias)))
    handoff = _best_cut(conf, answerable)
    handed_off = conf < handoff
    verbatim = _verbatim_cut(margins, top1, ~handed_off, verbatim_precision)
    n_in = len(in_scope)
    is_faq = np.array([bool(row) and row[0].entry.kind == "faq" for row in hits])
    verbatim_mask = ~handed_off & is_faq & (margins >= verbatim)
    report = {
        "in_scope": n_in,
        "out_of_scope": len(out_of_scope),
        "answerable": int(answerable.sum()),
        "handoff_rate_out_of_scope": round(float(handed_off[n_in:].mean()), 4),
        "handoff_rate_in_scope": round(float(handed_off[:n_in].mean()), 4),
        "answerable_answered": round(float((~handed_off & answerable).sum() / answerable.sum()), 4),
        "verbatim_rate_in_scope": round(float(verbatim_mask[:n_in].mean()), 4),
        "verbatim_top1_precision": round(
            float(top1[verbatim_mask].mean()) if verbatim_mask.any() else 1.0, 4
        ),
    }
    logger.info("Calibrated answer gate", extra={"weight": weight, "bias": bias, **report})
    return Calibration(weight, bias, round(handoff, 4), round(verbatim, 4), True, report)


def _best_cut(conf: np.ndarray, positive: np.ndarray) -> float:
    """Threshold maximising balanced accuracy of ``conf >= t`` against ``positive`` (midpoints)."""
    values = np.unique(conf)
    cuts = np.concatenate([[values[0] - 1e-6], (values[:-1] + values[1:]) / 2, [values[-1] + 1e-6]])
    best, best_score = 0.5, -1.0
    for cut in cuts:
        predicted = conf >= cut
        score = (predicted[positive].mean() + (~predicted[~positive]).mean()) / 2
        if score > best_score + 1e-12:
            best, best_score = float(cut), float(score)
    return min(max(best, 0.0), 1.0)


def _verbatim_cut(margins: np.ndarray, top1: np.ndarray, answered: np.ndarray, precision: float) -> float:
    """Smallest margin whose answered questions at or above it reach ``precision`` top-1 accuracy."""
    values, correct = margins[answered], top1[answered]
    best = float(values.max()) + 1e-6 if len(values) else 1.0
    for cut in np.unique(values)[::-1]:
        above = values >= cut
        if correct[above].mean() >= precision:
            best = float(cut)
        else:
            break
    return best


def calibrate_kb(
    kb_dir: str | Path,
    queries_csv: str | Path,
    out_of_scope_csv: str | Path,
    retriever: Retriever | None = None,
    passages: int | None = None,
) -> Calibration:
    """Calibrate the gate for the KB in ``kb_dir`` and save ``calibration.json`` there.

    Args:
        kb_dir: The knowledge base.
        queries_csv: In-scope validation questions (``query,gold_ids``).
        out_of_scope_csv: Out-of-scope questions (``query``).
        retriever: The retriever to calibrate (default: one with default settings over the KB).
        passages: Passages the bot gives the answer model (default: ``AnswerConfig.passages``).

    Returns:
        The saved calibration.
    """
    from apps.customer_service.config import AnswerConfig
    from apps.customer_service.retrieval_eval import read_queries

    retriever = retriever or Retriever(KnowledgeBase.load(kb_dir))
    calibration = calibrate(
        retriever,
        read_queries(queries_csv, retriever.kb),
        read_out_of_scope(out_of_scope_csv),
        passages=AnswerConfig().passages if passages is None else passages,
    )
    calibration.save(kb_dir)
    return calibration


def build_and_calibrate(
    sources: Sequence[str | Path | Source],
    kb_dir: str | Path,
    config: KBConfig | None = None,
    embedder: Embedder | None = None,
    show_progress_bar: bool = False,
    adapt: bool = False,
) -> KnowledgeBase:
    """Build ``kb_dir`` (:meth:`KnowledgeBase.build`, ``adapt`` as there), then recalibrate its answer
    gate when ``config`` names labelled queries and the entries changed (``last_build.calibration``
    is then ``recalibrated``).

    Raises:
        KBFormatError: ``calibration_queries`` without ``calibration_out_of_scope`` (nothing is written).
        FileNotFoundError, SourceError: as :meth:`KnowledgeBase.build` and :func:`calibrate_kb`.
    """
    config = config or KBConfig()
    if config.calibration_queries and not config.calibration_out_of_scope:
        raise KBFormatError("calibration_queries needs calibration_out_of_scope (a query CSV)")
    kb = KnowledgeBase.build(sources, kb_dir, config, embedder, show_progress_bar, adapt=adapt)
    if config.calibration_queries and kb.last_build.calibration != "kept":
        calibrate_kb(kb_dir, str(config.calibration_queries), str(config.calibration_out_of_scope))
        kb.manifest["last_build"]["calibration"] = "recalibrated"
    return kb


__all__ = [
    "CALIBRATION_FILE",
    "Calibration",
    "Route",
    "build_and_calibrate",
    "calibrate",
    "calibrate_kb",
    "margin",
    "read_out_of_scope",
    "top_cosine",
]
