"""Extractive answers: the passage sentences that best answer a question, quoted with their spans.

Faithful by construction: every sentence of the answer is a sentence of a cited passage, so it
can state nothing its source does not. Sentences are scored by the cosine between the question
and the sentence under the same encoder the passages were retrieved with, and are
quoted from the passages that hold the best-scoring sentences (see :class:`SentencePicker`), in
reading order within each passage, so the answer reads like the KB and nothing is taken out of
the context that qualifies it.

Example:
    >>> picker = SentencePicker(Embedder("minilm-l6"))
    >>> passages = [Passage("returns-1", text, context="Return window")]
    >>> picked = picker.pick("how long do I have to return shoes?", passages)
    >>> [(s.source_id, s.text) for s in picked]
    [('returns-1', 'You have 30 days from the day of delivery to return an item; …')]
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from core.sentences import split_sentences

logger = logging.getLogger(__name__)

__all__ = ["Passage", "PickedSentence", "SentencePicker"]

_YES_NO = re.compile(r"^(?:yes|no|sure|of course|absolutely|certainly)\s*[,.!:;–—-]\s*", re.IGNORECASE)


@dataclass(frozen=True)
class PickedSentence:
    """A passage sentence chosen for the answer.

    Attributes:
        source_id: Id of the passage it comes from.
        text: The sentence.
        start: Its offset in the passage text.
        end: The offset just past it (``passage[start:end] == text``, but for the first letter,
            upper-cased where a leading "Yes," was left out).
        score: Cosine between question and sentence.
    """

    source_id: str
    text: str
    start: int
    end: int
    score: float

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly fields."""
        return {
            "source_id": self.source_id,
            "text": self.text,
            "start": self.start,
            "end": self.end,
            "score": round(self.score, 4),
        }


@dataclass(frozen=True)
class Passage:
    """A retrieved passage to answer from.

    Attributes:
        id: Its id (cited in the answer).
        text: The passage text that sentences are quoted from.
        context: What the passage is about (an FAQ question or a section title); it is embedded
            with each sentence, so "You have 30 days …" under "Return window" matches a question
            about the return window although the sentence never says "window".
    """

    id: str
    text: str
    context: str = ""


class SentencePicker:
    """Chooses the sentences of retrieved passages that answer a question.

    A sentence scores the mean of two cosines with the question: of the sentence alone and of the
    sentence behind its passage's context. The first (best retrieved) passage is quoted, and so is
    any later one whose best sentence scores within ``passage_margin`` of the first one's (a
    two-part question is often answered by two entries); within a passage, its best
    ``per_passage`` sentences are kept in reading order, within ``max_chars`` overall.

    Args:
        embedder: Encoder with ``encode(texts) -> (n, dim)`` L2-normalised rows.
        per_passage: Most sentences quoted from one passage.
        max_passages: Most passages quoted.
        max_chars: Most characters in an answer (the best sentence is always kept).
        passage_margin: Another passage is quoted when its best sentence scores at least the best
            minus this.
        min_words: Shorter "sentences" (headings, labels) are not candidates.
        cache_size: Sentence vectors kept in memory (KB passages come back question after question).
    """

    def __init__(
        self,
        embedder: Any,
        per_passage: int = 3,
        max_passages: int = 2,
        max_chars: int = 600,
        passage_margin: float = 0.06,
        min_words: int = 4,
        cache_size: int = 20000,
    ) -> None:
        self.embedder = embedder
        self.per_passage = per_passage
        self.max_passages = max_passages
        self.max_chars = max_chars
        self.passage_margin = passage_margin
        self.min_words = min_words
        self.cache_size = cache_size
        self._cache: dict[str, np.ndarray] = {}

    def candidates(self, passages: Sequence[Passage]) -> list[PickedSentence]:
        """Every candidate sentence of ``passages`` (score 0), passage by passage in reading order.

        A leading "Yes," or "No," is left out: it answers the passage's own question ("Do you ship
        internationally?"), not necessarily the customer's ("Do you ship to Canada?").
        """
        out = []
        for passage in passages:
            for s in split_sentences(passage.text):
                if len(s.text.split()) < self.min_words:
                    continue
                lead = _YES_NO.match(s.text)
                cut = lead.end() if lead and len(s.text[lead.end() :].split()) >= self.min_words else 0
                text = s.text[cut:]
                out.append(PickedSentence(passage.id, text[0].upper() + text[1:], s.start + cut, s.end, 0.0))
        return out

    def _vectors(self, texts: Sequence[str]) -> np.ndarray:
        missing = list(dict.fromkeys(t for t in texts if t not in self._cache))
        if missing:
            if len(self._cache) + len(missing) > self.cache_size:
                self._cache.clear()
            for text, vector in zip(missing, np.asarray(self.embedder.encode(missing)), strict=True):
                self._cache[text] = vector
        return np.stack([self._cache[t] for t in texts])

    def score(
        self, question: str, candidates: Sequence[PickedSentence], passages: Sequence[Passage]
    ) -> list[PickedSentence]:
        """``candidates`` with their score against ``question`` (see the class docstring)."""
        if not candidates:
            return []
        context = {p.id: p.context for p in passages}
        plain = [c.text for c in candidates]
        framed = [f"{context[c.source_id]}: {c.text}" if context[c.source_id] else c.text for c in candidates]
        q = np.asarray(self.embedder.encode([question]))[0]
        sims = (self._vectors(plain) @ q + self._vectors(framed) @ q) / 2
        return [
            PickedSentence(c.source_id, c.text, c.start, c.end, float(sim))
            for c, sim in zip(candidates, sims, strict=True)
        ]

    def pick(self, question: str, passages: Sequence[Passage]) -> list[PickedSentence]:
        """The answer's sentences: passages best first, sentences in reading order within each.

        Args:
            question: The customer's question.
            passages: The retrieved passages, best first.

        Returns:
            The chosen sentences (empty when the passages have no candidate sentence).
        """
        scored = self.score(question, self.candidates(passages), passages)
        if not scored:
            return []
        by_passage: dict[str, list[PickedSentence]] = {}
        for s in scored:
            by_passage.setdefault(s.source_id, []).append(s)
        # Retrieval ranks passages better than one sentence's cosine does: the first passage is
        # always quoted, a later one only when its best sentence is about as good.
        order = [p.id for p in passages if p.id in by_passage]
        best = {pid: max(s.score for s in by_passage[pid]) for pid in order}
        quoted = [
            pid for pid in order if pid == order[0] or best[pid] >= best[order[0]] - self.passage_margin
        ]
        out: list[PickedSentence] = []
        chars = 0
        for pid in quoted[: self.max_passages]:
            ranked = sorted(by_passage[pid], key=lambda s: -s.score)[: self.per_passage]
            keep = []
            for s in ranked:  # most relevant first, so the length limit drops the least relevant
                if (out or keep) and chars + len(s.text) > self.max_chars:
                    continue
                keep.append(s)
                chars += len(s.text) + 1
            out += sorted(keep, key=lambda s: s.start)
        return out
