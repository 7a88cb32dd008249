"""Sentence segmentation with character spans (pysbd), cached per text.

Grounded answering works sentence by sentence: an extractive answer quotes the passage sentences
that answer a question, and a generated answer is checked one sentence at a time against the
sentences of its cited passages. Both need sentences that survive abbreviations ("e.g."),
decimals ("3.95"), URLs and list items, with their character offsets so the UI can highlight the
quoted span in its passage. pysbd (a port of the Golden Rules of sentence boundary detection) does
this without a model download; its results are cached because the same KB passages are split
again for every question that retrieves them.

Example:
    >>> [s.text for s in split_sentences("Returns are free. Costs are 3.95, e.g. for bulky items.")]
    ['Returns are free.', 'Costs are 3.95, e.g. for bulky items.']
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from functools import lru_cache

__all__ = ["Sentence", "split_sentences"]

_MARKUP = re.compile(r"^(?:[#>*+\-]+|\d+[.)])\s+")
_URL = re.compile(r"(?:https?://|www\.)[^\s<>\"'\])]*[^\s<>\"'\]).,;:!?]")
_local = threading.local()


@dataclass(frozen=True)
class Sentence:
    """One sentence of a text.

    Attributes:
        text: The sentence, stripped of surrounding whitespace and leading list/heading markers.
        start: Offset of ``text`` in the original text.
        end: Offset just past ``text`` in the original text (``original[start:end] == text``).
    """

    text: str
    start: int
    end: int


def _segmenter():  # noqa: ANN202 - pysbd has no type hints
    # pysbd's Segmenter keeps state while segmenting: one per thread (Streamlit runs sessions in threads).
    seg = getattr(_local, "segmenter", None)
    if seg is None:
        import pysbd

        seg = _local.segmenter = pysbd.Segmenter(language="en", clean=False, char_span=True)
    return seg


@lru_cache(maxsize=8192)
def _split(text: str) -> tuple[Sentence, ...]:
    # A URL's "?" or "." must not end a sentence: segment a copy in which each URL is masked by
    # letters of the same length, then cut the original at the same offsets.
    masked = _URL.sub(lambda m: "u" * len(m.group(0)), text)
    out: list[Sentence] = []
    for span in _segmenter().segment(masked):
        # pysbd's spans include trailing whitespace; a paragraph break inside one span is a boundary too.
        offset = span.start
        for piece in re.split(r"(\n\s*\n)", text[span.start : span.start + len(span.sent)]):
            stripped = piece.strip()
            if stripped:
                lead = len(piece) - len(piece.lstrip())
                marker = _MARKUP.match(stripped)
                cut = marker.end() if marker else 0
                start = offset + lead + cut
                body = stripped[cut:].strip()
                if body:
                    out.append(Sentence(body, start, start + len(body)))
            offset += len(piece)
    return tuple(s for s in out if text[s.start : s.end] == s.text)


def split_sentences(text: str) -> list[Sentence]:
    """The sentences of ``text`` in reading order, with their character spans.

    Headings and list markers (``#``, ``-``, ``1.``) are not part of a sentence; blank lines always
    end one. An empty or whitespace-only text has no sentences.
    """
    if not text or not text.strip():
        return []
    return list(_split(text))
