"""How the bot words a grounded answer: per-KB answer mode, quoted sentences with citations, confidence.

The pieces of :class:`~apps.customer_service.bot.SupportBot` that turn retrieved passages into the
text an agent sees, kept as plain functions so that the CLI, the UI and the benchmarks share them:

* :func:`answer_mode` — ``extractive`` or ``generate`` for a KB (its ``answering.json`` overrides
  the configuration; :func:`set_answer_mode` writes it);
* :func:`extractive_passages` — the retrieved hits as :class:`core.extractive.Passage` objects
  (an FAQ's question or a section's title as context);
* :func:`cite_sentences` — sentences grouped by source, each group followed by ``[id]``;
* :func:`answer_confidence` — what the confidence badge shows;
* :func:`highlight_spans` — where an answer's sentences stand in a passage (for the UI).
"""

from __future__ import annotations

import json
import logging
import math
import re
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from apps.customer_service.config import ANSWER_MODES, AnswerConfig
from apps.customer_service.retrieval import Hit
from core.config import write_json_atomic
from core.extractive import Passage, PickedSentence
from core.sentences import split_sentences

logger = logging.getLogger(__name__)

__all__ = [
    "ANSWERING_FILE",
    "answer_confidence",
    "answer_mode",
    "cite_sentences",
    "evidence_text",
    "extractive_passages",
    "highlight_spans",
    "set_answer_mode",
]

ANSWERING_FILE = "answering.json"
_CITATION = re.compile(r"\s*\[[^\[\]\s][^\[\]]{0,200}\]")
# Question-sentence scores (mean of the two cosines of core.extractive) between which the quoted
# sentences go from "barely related" to "clearly about the question" (sample KB: the right
# sentence scored 0.35-0.75, unrelated ones 0.0-0.3).
_WEAK_MATCH, _GOOD_MATCH = 0.15, 0.4


def answer_mode(kb_dir: str | Path | None, config: AnswerConfig) -> str:
    """``generate`` or ``extractive``: the KB's ``answering.json`` if it has one, else ``config.mode``.

    Raises:
        ValueError: ``answering.json`` exists but is not valid.
    """
    if kb_dir is None:
        return config.mode
    path = Path(kb_dir) / ANSWERING_FILE
    if not path.is_file():
        return config.mode
    try:
        mode = json.loads(path.read_text(encoding="utf-8"))["mode"]
    except (json.JSONDecodeError, KeyError, TypeError, UnicodeDecodeError) as err:
        raise ValueError(
            f"{path}: not a valid answering file ({err}); rewrite it with `aigc support answering`"
        ) from None
    if mode not in ANSWER_MODES:
        raise ValueError(f"{path}: field 'mode' must be one of {list(ANSWER_MODES)}, got {mode!r}")
    return mode


def set_answer_mode(kb_dir: str | Path, mode: str) -> Path:
    """Write the KB's answer mode to ``answering.json`` (atomically).

    Raises:
        ValueError: An unknown mode, or ``kb_dir`` holds no knowledge base.
    """
    from apps.customer_service.knowledge_base import MANIFEST_FILE

    if mode not in ANSWER_MODES:
        raise ValueError(f"--mode must be one of {list(ANSWER_MODES)}, got {mode!r}")
    kb_dir = Path(kb_dir)
    if not (kb_dir / MANIFEST_FILE).is_file():
        raise ValueError(f"{kb_dir}: no knowledge base here (no {MANIFEST_FILE})")
    path = kb_dir / ANSWERING_FILE
    write_json_atomic(path, {"mode": mode, "set_at": datetime.now(UTC).isoformat(timespec="seconds")})
    logger.info("Answer mode set", extra={"kb_dir": str(kb_dir), "mode": mode})
    return path


def extractive_passages(hits: Sequence[Hit]) -> list[Passage]:
    """The hits as passages to quote: FAQ answer or passage text, with the question or title as context."""
    return [Passage(h.id, h.entry.text, h.entry.question or h.entry.title) for h in hits]


def evidence_text(hit: Hit) -> str:
    """What a generated answer is checked against: the entry's title, a blank line, its text (the
    blank line keeps the title out of the first sentence)."""
    return f"{hit.entry.title}\n\n{hit.entry.text}"


def cite_sentences(sentences: Sequence[tuple[str, str]]) -> str:
    """``(source id, sentence)`` pairs as answer text: runs from one source end with ``[id]``.

    Example:
        >>> cite_sentences([("a", "One."), ("a", "Two."), ("b", "Three.")])
        'One. Two. [a] Three. [b]'
    """
    parts: list[str] = []
    for i, (source_id, sentence) in enumerate(sentences):
        parts.append(sentence)
        if i + 1 == len(sentences) or sentences[i + 1][0] != source_id:
            parts.append(f"[{source_id}]")
    return " ".join(parts)


def answer_confidence(
    retrieval: float,
    picked: Sequence[PickedSentence] = (),
    supported_share: float | None = None,
) -> float:
    """The confidence shown with an answer.

    Args:
        retrieval: The gate's retrieval confidence.
        picked: An extractive answer's sentences: a weak best match scales the confidence down
            linearly from 1 at a score of 0.4 to 0 at 0.15.
        supported_share: A generated answer's share of supported sentences (it multiplies in, so
            an answer that lost sentences to verification never shows a high confidence).
    """
    confidence = retrieval
    if picked:
        best = max(p.score for p in picked)
        confidence *= min(1.0, max(0.0, (best - _WEAK_MATCH) / (_GOOD_MATCH - _WEAK_MATCH)))
    if supported_share is not None:
        confidence *= supported_share
    # Rounded down, so that the shown confidence never exceeds the retrieval confidence it scales.
    return math.floor(confidence * 10_000) / 10_000


def highlight_spans(answer: str, passage: str) -> list[tuple[int, int]]:
    """Character spans of ``passage`` that the answer quotes (its sentences found verbatim), in order."""
    spans = []
    for sentence in split_sentences(_CITATION.sub("", answer)):  # citations are not part of a quote
        text = sentence.text
        at = passage.find(text) if len(text) > 3 else -1
        if at >= 0:
            spans.append((at, at + len(text)))
    return sorted(set(spans))
