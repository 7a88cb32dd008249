"""Cited summaries of a set of documents: extractive by centrality, or generated and then checked.

Two ways to summarise the same documents, with one contract: every summary sentence names the
documents it comes from (:attr:`CitedSentence.cites`), and nothing unchecked is kept.

* :class:`CentralitySummarizer` (the default) quotes the sentences closest to the weighted centroid
  of all candidate sentences (a document standing for a cluster of copies weighs as many), picked
  greedily with a redundancy penalty (maximal marginal relevance), at most one per document, shown
  in document order. Each quote cites its document, so it is supported by construction.
* :func:`write_checked` asks a generator for sentences that cite numbered documents (``[2]``), reads
  the citations back (:func:`parse_cited_sentences`; a sentence citing nothing is given the document
  it embeds closest to) and keeps a sentence only when the grounding
  verifier (:class:`core.grounding.GroundingVerifier`) finds it supported by the documents it cites
  *and* the output check (:func:`core.injection.check_output`) finds no URL, contact, code or
  instruction that they do not hold. The caller falls back to the extractive summary when nothing
  survives.

:func:`check_sentences` applies the same two checks to any cited sentences (the extractive ones
included, so a summary's verdicts never depend on how it was made).

Example:
    >>> summarizer = CentralitySummarizer(Embedder("minilm-l6"), max_sentences=2)
    >>> docs = [SourceDoc("a", "Oil falls 5% as OPEC output rises.", weight=3), SourceDoc("b", ...)]
    >>> [(s.text, s.cites) for s in summarizer.summarize(docs)]
    [('Oil falls 5% as OPEC output rises.', ('a',)), ...]
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from core.grounding import GroundingVerifier
from core.injection import check_output
from core.sentences import split_sentences

logger = logging.getLogger(__name__)

__all__ = [
    "CentralitySummarizer",
    "CheckedSummary",
    "CitedSentence",
    "SourceDoc",
    "check_sentences",
    "parse_cited_sentences",
    "write_checked",
]

_TRAILING_URLS = re.compile(r"(?:\s+(?:https?://|www\.)\S+)+\s*$")
_CITE = re.compile(r"\[\s*([A-Za-z0-9_.:-]{1,64}(?:\s*[,;]\s*[A-Za-z0-9_.:-]{1,64})*)\s*\]")
# "Oil fell. [1] Banks rose. [2]": a citation just after a full stop belongs to the sentence before it.
_CITE_AFTER_STOP = re.compile(r"([.!?])((?:\s*\[[^\[\]]{1,200}\])+)")


@dataclass(frozen=True)
class SourceDoc:
    """A document to summarise.

    Attributes:
        id: Its id (cited).
        text: The text sentences are quoted from and checked against.
        weight: How many documents it stands for (e.g. the size of a near-duplicate cluster).
        cites: The ids a sentence quoted from it cites (default: its own id only).
    """

    id: str
    text: str
    weight: float = 1.0
    cites: tuple[str, ...] = ()

    @property
    def citations(self) -> tuple[str, ...]:
        """:attr:`cites`, or ``(id,)``."""
        return self.cites or (self.id,)


@dataclass(frozen=True)
class CitedSentence:
    """A summary sentence with the documents it cites and the checks' verdict.

    Attributes:
        text: The sentence, citations removed.
        cites: Ids of the documents it cites, in order.
        score: Centrality (extractive sentences; 0 for generated ones).
        supported: Whether the checks passed (``None``: not checked yet).
        reasons: Why not (verifier reasons, ``"output code 1234"``, ``"no citation"``).
    """

    text: str
    cites: tuple[str, ...]
    score: float = 0.0
    supported: bool | None = None
    reasons: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly fields."""
        return {
            "text": self.text,
            "cites": list(self.cites),
            "score": round(self.score, 4),
            "supported": self.supported,
            "reasons": list(self.reasons),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CitedSentence:
        """Inverse of :meth:`to_dict`."""
        return cls(
            str(data["text"]),
            tuple(str(c) for c in data.get("cites", ())),
            float(data.get("score", 0.0)),
            data.get("supported"),
            tuple(str(r) for r in data.get("reasons", ())),
        )


class CentralitySummarizer:
    """Picks the most central, least redundant sentences of a set of documents.

    Args:
        embedder: Encoder with ``encode(texts) -> (n, dim)`` L2-normalised rows.
        max_sentences: Most sentences in a summary.
        min_words: Shorter sentences (labels, tickers alone) are not candidates.
        max_chars: Longer sentences are not candidates (a summary sentence is read at a glance).
        sentences_per_doc: Candidates per document (its first sentences: a headline, a lead).
        redundancy: A candidate this similar (cosine) to a chosen sentence is never chosen.
        diversity: Weight of the redundancy penalty in the greedy choice (0: centrality only).
        boilerplate_docs: A sentence found in this many documents or more is boilerplate, not news.
    """

    def __init__(
        self,
        embedder: Any,
        max_sentences: int = 4,
        min_words: int = 4,
        max_chars: int = 320,
        sentences_per_doc: int = 3,
        redundancy: float = 0.85,
        diversity: float = 0.5,
        boilerplate_docs: int = 2,
    ) -> None:
        if max_sentences < 1:
            raise ValueError(f"max_sentences must be >= 1, got {max_sentences}")
        self.embedder = embedder
        self.max_sentences = max_sentences
        self.min_words = min_words
        self.max_chars = max_chars
        self.sentences_per_doc = sentences_per_doc
        self.redundancy = redundancy
        self.diversity = diversity
        self.boilerplate_docs = boilerplate_docs

    def candidates(self, docs: Sequence[SourceDoc]) -> list[tuple[int, str]]:
        """``(document index, sentence)`` of every candidate sentence, in document order.

        A candidate is one of a document's first sentences without the links it ends with; sentences
        repeated by ``boilerplate_docs`` documents are left out.
        """
        per_doc = [
            [
                text
                for s in split_sentences(doc.text)[: self.sentences_per_doc]
                for text in [_TRAILING_URLS.sub("", s.text)]  # still a quote: a prefix of the sentence
                if len(text.split()) >= self.min_words and len(text) <= self.max_chars
            ]
            for doc in docs
        ]
        seen = Counter(_norm(s) for sentences in per_doc for s in set(sentences))
        return [
            (i, s)
            for i, sentences in enumerate(per_doc)
            for s in dict.fromkeys(sentences)
            if seen[_norm(s)] < self.boilerplate_docs
        ]

    def summarize(self, docs: Sequence[SourceDoc], vectors: np.ndarray | None = None) -> list[CitedSentence]:
        """The summary of ``docs``: quotes in document order, each citing its document.

        Args:
            docs: The documents (in the order the summary should follow, e.g. by time).
            vectors: Embeddings of :meth:`candidates`' sentences when the caller already has them.

        Returns:
            Up to ``max_sentences`` sentences (fewer when there are fewer candidates).
        """
        found = self.candidates(docs)
        if not found:
            return []
        if vectors is None:
            vectors = np.asarray(self.embedder.encode([s for _, s in found]), dtype=np.float32)
        counts = Counter(i for i, _ in found)
        weights = np.array([max(docs[i].weight, 0.0) / counts[i] for i, _ in found], dtype=np.float32)
        centroid = (weights[:, None] * vectors).sum(axis=0)
        centroid /= max(float(np.linalg.norm(centroid)), 1e-12)
        centrality = vectors @ centroid
        chosen = _mmr(vectors, centrality, [i for i, _ in found], self.max_sentences, self)
        picked = sorted(chosen, key=lambda k: (found[k][0], k))
        return [CitedSentence(found[k][1], docs[found[k][0]].citations, float(centrality[k])) for k in picked]


def _mmr(
    vectors: np.ndarray, centrality: np.ndarray, owners: list[int], k: int, cfg: CentralitySummarizer
) -> list[int]:
    """Greedy maximal marginal relevance, one sentence per document, hard redundancy cap."""
    chosen: list[int] = []
    used: set[int] = set()
    available = np.ones(len(owners), dtype=bool)
    while len(chosen) < k and available.any():
        penalty = (vectors @ vectors[chosen].T).max(axis=1) if chosen else np.zeros(len(owners))
        score = np.where(available, centrality - cfg.diversity * penalty, -np.inf)
        best = int(np.argmax(score))
        chosen.append(best)
        used.add(owners[best])
        similar = (vectors @ vectors[best]) >= cfg.redundancy
        available &= ~similar & np.array([o not in used for o in owners])
    return chosen


def _norm(sentence: str) -> str:
    return " ".join(re.findall(r"\w+", sentence.lower()))


def parse_cited_sentences(text: str, labels: Mapping[str, str]) -> list[CitedSentence]:
    """The sentences of generated ``text`` with the documents each cites.

    Citations are bracketed labels (``[2]``, ``[1, 3]``, ``[1][3]``); ``labels`` maps each label
    shown to the model to a document id, and unknown labels are ignored. A citation right after a
    full stop belongs to the sentence before it; a sentence without citations takes those of the
    next sentence that has some (one citation may close a run of sentences from one source), and
    cites nothing when none follows.
    """
    text = _CITE_AFTER_STOP.sub(lambda m: f"{m.group(2)}{m.group(1)}", text.strip())
    parsed: list[tuple[str, tuple[str, ...]]] = []
    for sentence in split_sentences(text):
        cites = tuple(
            dict.fromkeys(
                labels[part.strip()]
                for match in _CITE.finditer(sentence.text)
                for part in re.split(r"[,;]", match.group(1))
                if part.strip() in labels
            )
        )
        plain = " ".join(_CITE.sub(" ", sentence.text).split())
        plain = re.sub(r"\s+([.,;:!?])", r"\1", plain)
        if len(re.findall(r"\w+", plain)) >= 2:
            parsed.append((plain, cites))
    out: list[CitedSentence] = []
    following: tuple[str, ...] = ()
    for plain, cites in reversed(parsed):
        following = cites or following
        out.append(CitedSentence(plain, cites or following))
    return out[::-1]


def check_sentences(
    sentences: Sequence[CitedSentence],
    sources: Mapping[str, str],
    verifier: GroundingVerifier,
    min_words: int = 4,
) -> list[CitedSentence]:
    """``sentences`` with their verdict: supported by the documents each cites, and clean output.

    A sentence is supported when it has at least ``min_words`` words (a fragment such as "The
    incident." states nothing a reader can use, and is too short for the verifier to judge), cites at
    least one known document, the grounding verifier finds it supported by the text of the documents
    it cites (not by the others), and the output check finds nothing in it that they do not hold
    (URLs, contacts, codes, instructions).

    Args:
        sentences: The summary sentences.
        sources: ``{document id: text}`` of every document that may be cited.
        verifier: The grounding verifier (on the summariser's encoder).
        min_words: Fewest words of a summary sentence.
    """
    checked = []
    for sentence in sentences:
        cited = {i: sources[i] for i in sentence.cites if i in sources}
        if len(re.findall(r"\w+", sentence.text)) < min_words:
            checked.append(replace(sentence, supported=False, reasons=("fragment",)))
            continue
        if not cited:
            checked.append(replace(sentence, supported=False, reasons=("no citation",)))
            continue
        (verdict,) = verifier.check([sentence.text], cited) or [None]
        reasons = list(verdict.reasons) if verdict is not None else ["empty"]
        reasons += [f"output {p.kind} {p.value}" for p in check_output(sentence.text, list(cited.values()))]
        checked.append(replace(sentence, supported=not reasons, reasons=tuple(reasons)))
    return checked


def _cite_nearest(
    sentences: Sequence[CitedSentence], ids: Sequence[str], sources: Mapping[str, str], encoder: Any
) -> list[CitedSentence]:
    """``sentences``, those without citations now citing the closest of the documents ``ids``."""
    bare = [k for k, s in enumerate(sentences) if not s.cites]
    known = [i for i in ids if i in sources]
    if not bare or not known:
        return list(sentences)
    vectors = np.asarray(encoder.encode([sentences[k].text for k in bare] + [sources[i] for i in known]))
    nearest = (vectors[: len(bare)] @ vectors[len(bare) :].T).argmax(axis=1)
    out = list(sentences)
    for k, best in zip(bare, nearest, strict=True):
        out[k] = replace(out[k], cites=(known[int(best)],))
    return out


@dataclass
class CheckedSummary:
    """What :func:`write_checked` made of one generation.

    Attributes:
        raw: The generator's text as it came.
        kept: The supported sentences (in order).
        dropped: The others, with their reasons.
    """

    raw: str
    kept: list[CitedSentence] = field(default_factory=list)
    dropped: list[CitedSentence] = field(default_factory=list)


def write_checked(
    generator: Any,
    messages: Sequence[Mapping[str, str]],
    labels: Mapping[str, str],
    sources: Mapping[str, str],
    verifier: GroundingVerifier,
    max_sentences: int = 4,
    infer_citations: bool = True,
    **settings: Any,
) -> CheckedSummary:
    """Generate a cited summary and keep only the sentences the checks support.

    Args:
        generator: A :class:`core.generation.Generator` (anything with ``generate(messages, **settings)``
            returning an object with ``text``).
        messages: The chat prompt; it numbers the documents with the keys of ``labels``.
        labels: Label shown to the model (``"1"``) -> document id.
        sources: ``{document id: text}`` the sentences are checked against.
        verifier: The grounding verifier.
        max_sentences: Most sentences kept (the first supported ones).
        infer_citations: A sentence that cites nothing cites the document it embeds closest to (small
            models often leave citations out); it is then checked against that document alone.
        **settings: Decoding settings (``max_new_tokens=160`` …).

    Returns:
        The raw text, the kept and the dropped sentences.
    """
    raw = generator.generate(list(messages), **settings).text
    sentences = parse_cited_sentences(raw, labels)
    if infer_citations:
        sentences = _cite_nearest(sentences, [labels[k] for k in labels], sources, verifier.embedder)
    checked = check_sentences(sentences, sources, verifier)
    kept = [s for s in checked if s.supported][:max_sentences]
    dropped = [s for s in checked if not s.supported]
    if dropped:
        logger.info(
            "Dropped unsupported summary sentences",
            extra={"dropped": len(dropped), "sentences": len(checked)},
        )
    return CheckedSummary(raw, kept, dropped)
