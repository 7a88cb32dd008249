"""Grounding verifier: is every sentence of an answer supported by the passages it cites?

A sentence is *supported* when all four checks pass against its cited passages (a sentence found
verbatim in a passage is supported without them):

1. **facts** — every number, URL, e-mail address, phone number and name in it occurs in the cited
   text (:func:`core.facts.unsupported_facts`);
2. **words** — at least ``word_coverage`` of its content words (stop words left out, compared by
   their first five letters) occur in the cited text: a restatement reuses its source's words, an
   invented clause ("they pay their bills without applying to a bank") brings its own;
3. **meaning** — its embedding is close to the best passage sentence, clause or pair of adjacent
   sentences: cosine at or above ``threshold``, calibrated on labelled (claim, passage, supported)
   pairs with :func:`calibrate_threshold`;
4. **polarity** — it is negated ("not", "never", "cannot", a leading "No") exactly when that best
   passage sentence is, so "you can return opened mattresses" is not supported by "opened
   mattresses cannot be returned".

On 183 hand-labelled sentences of SmolLM2 answers (``bench/data/grounding_labels.csv``) the cosine
separated supported from unsupported sentences no better than chance (balanced accuracy 0.52;
calibrated threshold 0.09), while facts + polarity + words at 0.7 kept 7 sentences of which 6 were
supported; see docs/benchmarks/support_grounding.md.

:meth:`GroundingVerifier.verify` keeps the supported sentences of an answer and reports the
dropped ones with their reasons; the caller decides what to show when too little is left.

Example:
    >>> verifier = GroundingVerifier(Embedder("minilm-l6"))
    >>> result = verifier.verify("Returns take 4 weeks. Plus members have 60 days.", {"ret": passage})
    >>> result.text, [c.reasons for c in result.dropped]
    ('Plus members have 60 days.', [['number 4']])
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from core.facts import is_negated, unsupported_facts
from core.sentences import split_sentences

logger = logging.getLogger(__name__)

__all__ = [
    "DEFAULT_SUPPORT_THRESHOLD",
    "DEFAULT_WORD_COVERAGE",
    "GroundingVerifier",
    "SentenceCheck",
    "Verification",
    "calibrate_threshold",
    "content_words",
    "lexical_problems",
    "strip_citations",
]

#: Cosine (all-MiniLM-L6-v2) at or above which a claim counts as meaning what a passage sentence
#: says; calibrated on the labelled pairs of ``bench/data/grounding_labels.csv``
#: (docs/benchmarks/support_grounding.md): it only rules out sentences about something else.
DEFAULT_SUPPORT_THRESHOLD = 0.09
#: Share of a claim's content words that must occur in its cited text (same labelled pairs).
DEFAULT_WORD_COVERAGE = 0.7
_STOP_WORDS = frozenset(
    [
        "a",
        "an",
        "the",
        "and",
        "or",
        "but",
        "if",
        "then",
        "else",
        "of",
        "to",
        "in",
        "on",
        "at",
        "by",
        "for",
        "with",
        "from",
        "as",
        "is",
        "are",
        "was",
        "were",
        "be",
        "been",
        "being",
        "it",
        "its",
        "this",
        "that",
        "these",
        "those",
        "you",
        "your",
        "yours",
        "we",
        "our",
        "us",
        "i",
        "me",
        "my",
        "he",
        "she",
        "they",
        "them",
        "their",
        "there",
        "here",
        "can",
        "could",
        "will",
        "would",
        "should",
        "may",
        "might",
        "must",
        "do",
        "does",
        "did",
        "done",
        "have",
        "has",
        "had",
        "not",
        "no",
        "yes",
        "so",
        "such",
        "than",
        "too",
        "very",
        "just",
        "also",
        "only",
        "about",
        "into",
        "over",
        "after",
        "before",
        "up",
        "down",
        "out",
        "off",
        "again",
        "further",
        "once",
        "more",
        "most",
        "other",
        "some",
        "any",
        "each",
        "few",
        "all",
        "both",
        "own",
        "same",
        "what",
        "which",
        "who",
        "whom",
        "when",
        "where",
        "why",
        "how",
        "please",
        "get",
        "got",
    ]
)
_CITATION = re.compile(r"\s*\[[^\[\]]{1,200}\]")
_LEADING_NO = re.compile(r"^\s*no\b", re.IGNORECASE)
_CLAUSE = re.compile(r"\s*(?:;|:|—|–|\s-\s)\s*|,\s+(?:but|while|whereas|and)\s+")


class _Encoder(Protocol):
    def encode(
        self, texts: Sequence[str], batch_size: int = ..., show_progress_bar: bool | None = ...
    ) -> Any: ...


@dataclass(frozen=True)
class SentenceCheck:
    """The verdict on one answer sentence.

    Attributes:
        sentence: The sentence (citations removed).
        supported: Whether all checks passed.
        reasons: Why not (``"number 4"``, ``"words 0.50 < 0.70"``, ``"polarity"``); empty when supported.
        score: Cosine to the best passage sentence (or adjacent pair).
        evidence: That passage text.
        source_id: The passage it came from.
    """

    sentence: str
    supported: bool
    reasons: list[str]
    score: float
    evidence: str = ""
    source_id: str | None = None


@dataclass
class Verification:
    """The verdict on an answer: its sentences, which were kept and which dropped."""

    checks: list[SentenceCheck] = field(default_factory=list)

    @property
    def kept(self) -> list[SentenceCheck]:
        """The supported sentences, in answer order."""
        return [c for c in self.checks if c.supported]

    @property
    def dropped(self) -> list[SentenceCheck]:
        """The unsupported sentences, in answer order."""
        return [c for c in self.checks if not c.supported]

    @property
    def supported_share(self) -> float:
        """Share of sentences supported (0 for an answer without sentences)."""
        return len(self.kept) / len(self.checks) if self.checks else 0.0

    @property
    def text(self) -> str:
        """The answer made of the supported sentences only."""
        return " ".join(c.sentence for c in self.kept)

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly summary (counts and the dropped sentences with their reasons)."""
        return {
            "sentences": len(self.checks),
            "supported": len(self.kept),
            "supported_share": round(self.supported_share, 4),
            "dropped": [{"sentence": c.sentence, "reasons": c.reasons} for c in self.dropped],
        }


class GroundingVerifier:
    """Checks answer sentences against cited passages (facts, meaning, polarity).

    Args:
        embedder: Sentence encoder with ``encode(texts) -> (n, dim)`` L2-normalised rows (the KB's).
        threshold: Cosine at or above which a sentence's meaning counts as supported.
        word_coverage: Share of a sentence's content words that must occur in the cited text.
        min_words: Sentences shorter than this (after removing citations) are not checked for
            meaning, words or polarity, only for facts ("Yes." or "Thank you." state nothing to verify).
    """

    def __init__(
        self,
        embedder: _Encoder,
        threshold: float = DEFAULT_SUPPORT_THRESHOLD,
        min_words: int = 3,
        word_coverage: float = DEFAULT_WORD_COVERAGE,
    ) -> None:
        self.embedder = embedder
        self.threshold = threshold
        self.min_words = min_words
        self.word_coverage = word_coverage

    def check(self, sentences: Sequence[str], passages: Mapping[str, str]) -> list[SentenceCheck]:
        """Verdicts on ``sentences`` against ``passages`` (``{source id: text}``), in order."""
        sentences = [s for s in (strip_citations(s, passages) for s in sentences) if s]
        if not sentences:
            return []
        units = _evidence_units(passages)
        if not units:
            return [SentenceCheck(s, False, ["no cited passage"], 0.0) for s in sentences]
        cited_text = "\n".join(passages.values())
        flat_cited = " ".join(cited_text.split())
        cited_stems = {w[:5] for w in content_words(cited_text)}
        # A verbatim quote says what its source says: only the other sentences need the encoder.
        quoted = [" ".join(s.split()) in flat_cited for s in sentences]
        checked = [s for s, q in zip(sentences, quoted, strict=True) if not q]
        sims = np.zeros((0, len(units)))
        if checked:
            vectors = np.asarray(self.embedder.encode(checked + [text for _, text in units]))
            sims = vectors[: len(checked)] @ vectors[len(checked) :].T
        checks = []
        row = -1
        for sentence, verbatim in zip(sentences, quoted, strict=True):
            if verbatim:
                flat = " ".join(sentence.split())
                # A quote running across two passages is credited to the first.
                origin = next(
                    (i for i, t in passages.items() if flat in " ".join(t.split())), next(iter(passages))
                )
                checks.append(SentenceCheck(sentence, True, [], 1.0, sentence, origin))
                continue
            row += 1
            best = int(np.argmax(sims[row]))
            source_id, evidence = units[best]
            score = float(sims[row, best])
            reasons = unsupported_facts(sentence, cited_text)
            if len(sentence.split()) >= self.min_words:
                words = content_words(sentence)
                coverage = sum(w[:5] in cited_stems for w in words) / len(words) if words else 1.0
                if coverage < self.word_coverage:
                    reasons.append(f"words {coverage:.2f} < {self.word_coverage:.2f}")
                if score < self.threshold:
                    reasons.append(f"meaning {score:.2f} < {self.threshold:.2f}")
                if _negated(sentence) != _negated(evidence):
                    reasons.append("polarity")
            checks.append(SentenceCheck(sentence, not reasons, reasons, score, evidence, source_id))
        return checks

    def verify(self, answer: str, passages: Mapping[str, str]) -> Verification:
        """Split ``answer`` into sentences and check each against ``passages``."""
        answer = strip_citations(answer, passages)
        result = Verification(self.check([s.text for s in split_sentences(answer)], passages))
        if result.dropped:
            logger.info(
                "Dropped unsupported answer sentences",
                extra={"dropped": len(result.dropped), "sentences": len(result.checks)},
            )
        return result


def content_words(text: str) -> list[str]:
    """The lower-cased words of ``text`` that carry content (no stop words, no single letters)."""
    return [w for w in re.findall(r"[a-z0-9]+", text.lower()) if len(w) > 1 and w not in _STOP_WORDS]


def lexical_problems(claim: str, source: str) -> list[str]:
    """Why ``source`` does not support ``claim`` word for word (empty: it does); no model involved.

    Stricter than :meth:`GroundingVerifier.check` and independent of any embedding: a claim found
    verbatim in the source passes; otherwise *every* content word of the claim (compared by its first
    five letters), every fact (:func:`core.facts.unsupported_facts`) and its negation must occur in
    the source. A paraphrase that swaps in a synonym fails, which is the point: it measures how
    much of a summary could be checked by reading the source, not how plausible it is.

    Args:
        claim: One sentence (citations removed).
        source: The text it cites (several sources joined by newlines).

    Returns:
        ``"words: a, b"``, ``"number 4"``, ``"polarity"`` … in that order.
    """
    flat_claim, flat_source = " ".join(claim.split()), " ".join(source.split())
    if flat_claim and flat_claim in flat_source:
        return []
    stems = {w[:5] for w in content_words(source)}
    missing = [w for w in dict.fromkeys(content_words(claim)) if w[:5] not in stems and not w.isdigit()]
    problems = [f"words: {', '.join(missing)}"] if missing else []
    problems += unsupported_facts(claim, source)
    if _negated(claim) and not _negated(source):
        problems.append("polarity")
    return problems


def strip_citations(text: str, ids: Iterable[str] | None = None) -> str:
    """``text`` without bracketed citations (``[order-01]``): they are references, not claims.

    Args:
        text: The answer.
        ids: The source ids that may be cited; when given, only brackets naming them are removed
            (a source's own "[Group Name]" stays part of the quote).
    """
    if ids is None:
        return " ".join(_CITATION.sub("", text).split())
    allowed = set(ids)

    def drop(match: re.Match[str]) -> str:
        parts = [p.strip() for p in re.split(r"[,;]", match.group(0).strip()[1:-1])]
        return "" if all(p in allowed for p in parts) else match.group(0)

    return " ".join(_CITATION.sub(drop, text).split())


def _negated(text: str) -> bool:
    return is_negated(text) or bool(_LEADING_NO.match(text))


def _evidence_units(passages: Mapping[str, str]) -> list[tuple[str, str]]:
    """Each passage's sentences, their clauses (an answer may restate half of one) and each pair of
    adjacent sentences (an answer may join two)."""
    units: list[tuple[str, str]] = []
    for source_id, text in passages.items():
        sentences = [s.text for s in split_sentences(text)]
        units += [(source_id, s) for s in sentences]
        for sentence in sentences:
            clauses = [c.strip() for c in _CLAUSE.split(sentence) if len(c.split()) >= 3]
            units += [(source_id, c) for c in clauses if len(clauses) > 1]
        units += [(source_id, f"{a} {b}") for a, b in zip(sentences, sentences[1:], strict=False)]
    return units


def calibrate_threshold(scores: Sequence[float], labels: Sequence[bool]) -> tuple[float, dict[str, float]]:
    """The cosine threshold that best separates supported from unsupported labelled pairs.

    Chooses the cut with the highest balanced accuracy, ties broken towards the *higher* cut
    (a wrongly kept sentence reaches a customer; a wrongly dropped one only shortens an answer).

    Args:
        scores: Cosine of each labelled claim to its best passage sentence.
        labels: Whether a person judged the claim supported by the passage.

    Returns:
        ``(threshold, report)`` where the report has the balanced accuracy, precision and recall
        of "supported" at that threshold.

    Raises:
        ValueError: Lengths differ or only one class is present.
    """
    s, y = np.asarray(scores, dtype=float), np.asarray(labels, dtype=bool)
    if len(s) != len(y) or y.all() or not y.any():
        raise ValueError("calibration needs as many labels as scores, with both classes present")
    values = np.unique(s)
    cuts = np.concatenate([(values[:-1] + values[1:]) / 2, [values[-1] + 1e-6]])
    best_cut, best_acc = float(cuts[0]), -1.0
    for cut in cuts:
        predicted = s >= cut
        acc = (predicted[y].mean() + (~predicted[~y]).mean()) / 2
        if acc >= best_acc - 1e-12:
            best_cut, best_acc = float(cut), float(acc)
    predicted = s >= best_cut
    precision = float(y[predicted].mean()) if predicted.any() else 1.0
    return round(best_cut, 4), {
        "balanced_accuracy": round(best_acc, 4),
        "precision": round(precision, 4),
        "recall": round(float(predicted[y].mean()), 4),
        "pairs": int(len(y)),
    }
