"""Split Markdown and plain-text documents into retrieval passages with stable ids.

A document is cut into *sections* at ATX headings (``#`` … ``######``; lines inside fenced code
blocks are not headings). Each section's body is cut into *chunks* at paragraph boundaries (blank
lines), long paragraphs at sentence ends and, as a last resort, at spaces. Consecutive chunks of
one section overlap: a chunk starts with the last sentences (at most ``overlap_chars``) of the
chunk before it, so an answer that straddles a boundary is still found whole in one chunk.

Chunk ids are ``{slug}-{n}``: the heading's slug (GitHub style: lower case, runs of anything but
letters and digits become ``-``) and the chunk's 0-based number inside its section. Text before
the first heading has the slug ``top``. A slug that repeats in a document gets ``-1``, ``-2`` …
(the first free one). Since slugs are unique per document and ``n`` holds no ``-``, ids are
unique, and editing one section leaves the ids of every other section unchanged.

Plain text (``markdown=False``) has no headings: the whole file is one ``top`` section.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from apps.customer_service.config import ChunkConfig

TOP_SLUG = "top"
_HEADING = re.compile(r"^ {0,3}(#{1,6})(?:[ \t]+(.*?))?[ \t]*$")
_CLOSING_HASHES = re.compile(r"(?:^|[ \t]+)#+$")
_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
_PARAGRAPH_BREAK = re.compile(r"\n[ \t]*\n")


@dataclass(frozen=True)
class Section:
    """A heading and the text under it (up to the next heading of any level)."""

    headings: tuple[str, ...]  # the heading path, outermost first; () for text before any heading
    slug: str
    body: str
    line: int  # 1-based line of the heading (or of the first line for ``top``)


@dataclass(frozen=True)
class Chunk:
    """One passage of a section."""

    slug: str
    index: int
    headings: tuple[str, ...]
    text: str
    line: int

    @property
    def key(self) -> str:
        """The document-local id, ``{slug}-{index}``."""
        return f"{self.slug}-{self.index}"


@dataclass
class _Unit:
    text: str
    new_paragraph: bool


def slugify(text: str) -> str:
    """GitHub-style anchor: lower case; runs of anything but letters and digits become ``-``."""
    return re.sub(r"[^\w]+|_+", "-", text.lower()).strip("-")


def _unique_slug(base: str, used: set[str]) -> str:
    slug = base or "section"
    if slug in used:
        n = 1
        while f"{slug}-{n}" in used:
            n += 1
        slug = f"{slug}-{n}"
    used.add(slug)
    return slug


def split_sections(text: str, markdown: bool = True) -> list[Section]:
    """Cut a document into sections at headings (all of it is one ``top`` section for plain text).

    Args:
        text: The document.
        markdown: Recognise ATX headings outside fenced code blocks.

    Returns:
        Sections in document order, including ones with an empty body (they still reserve a slug).
    """
    used: set[str] = {TOP_SLUG}
    sections: list[Section] = []
    stack: list[tuple[int, str]] = []
    headings: tuple[str, ...] = ()
    slug, start_line, body = TOP_SLUG, 1, []
    fence: str | None = None
    for number, line in enumerate(text.splitlines(), start=1):
        opened = _FENCE.match(line) if markdown else None
        if fence is not None:
            if opened and opened.group(1)[0] == fence[0] and len(opened.group(1)) >= len(fence):
                fence = None
            body.append(line)
            continue
        if opened:
            fence = opened.group(1)
            body.append(line)
            continue
        match = _HEADING.match(line) if markdown else None
        if match is None:
            body.append(line)
            continue
        sections.append(Section(headings, slug, "\n".join(body).strip(), start_line))
        level = len(match.group(1))
        title = _CLOSING_HASHES.sub("", match.group(2) or "").strip()
        stack = [(lvl, name) for lvl, name in stack if lvl < level] + [(level, title)]
        headings = tuple(name for _, name in stack)
        slug, start_line, body = _unique_slug(slugify(title), used), number, []
    sections.append(Section(headings, slug, "\n".join(body).strip(), start_line))
    return sections


def _units(body: str, budget: int) -> list[_Unit]:
    """Paragraphs, or sentences (or word runs) of paragraphs longer than ``budget``."""
    units: list[_Unit] = []
    for paragraph in _PARAGRAPH_BREAK.split(body):
        paragraph = paragraph.strip()
        if not paragraph:
            continue
        if len(paragraph) <= budget:
            units.append(_Unit(paragraph, True))
            continue
        first = True
        for sentence in _SENTENCE_END.split(paragraph):
            for piece in _split_words(sentence, budget):
                units.append(_Unit(piece, first))
                first = False
    return units


def _split_words(text: str, budget: int) -> list[str]:
    if len(text) <= budget:
        return [text]
    pieces: list[str] = []
    current = ""
    for word in text.split():
        while len(word) > budget:  # a "word" longer than the budget (a URL, a hash) is cut hard
            if current:
                pieces.append(current)
                current = ""
            pieces.append(word[:budget])
            word = word[budget:]
        if current and len(current) + 1 + len(word) > budget:
            pieces.append(current)
            current = word
        else:
            current = f"{current} {word}" if current else word
    if current:
        pieces.append(current)
    return pieces


def _join(units: list[_Unit]) -> str:
    out = ""
    for i, unit in enumerate(units):
        out += unit.text if i == 0 else ("\n\n" if unit.new_paragraph else " ") + unit.text
    return out


def _tail(units: list[_Unit], overlap_chars: int) -> list[_Unit]:
    """The last whole units that fit in ``overlap_chars``, else the last words of the last unit."""
    if overlap_chars <= 0:
        return []
    taken: list[_Unit] = []
    size = 0
    for unit in reversed(units):
        if size + len(unit.text) + 2 > overlap_chars:
            break
        taken.insert(0, unit)
        size += len(unit.text) + 2
    if taken:
        taken[0] = _Unit(taken[0].text, True)
        return taken
    tail = units[-1].text[-(overlap_chars - 2) :]
    cut = tail.find(" ")
    tail = tail[cut + 1 :] if 0 <= cut < len(tail) - 1 else ""
    return [_Unit(tail, True)] if tail else []


def chunk_text(body: str, max_chars: int = 700, overlap_chars: int = 150) -> list[str]:
    """Cut one section's text into overlapping passages of at most ``max_chars`` characters.

    Args:
        body: The text.
        max_chars: Longest passage, overlap included.
        overlap_chars: Longest overlap carried from one passage into the next.

    Returns:
        The passages; ``[]`` for blank text.
    """
    ChunkConfig(max_chars, overlap_chars)  # validates
    chunks: list[str] = []
    current: list[_Unit] = []
    size = fresh = 0  # fresh: units in ``current`` that are not carried-over overlap
    for unit in _units(body, max_chars - overlap_chars):
        if fresh and size + len(unit.text) + 2 > max_chars:
            chunks.append(_join(current))
            current = _tail(current, overlap_chars)
            size, fresh = sum(len(u.text) + 2 for u in current), 0
        current.append(unit)
        size += len(unit.text) + 2
        fresh += 1
    if fresh:
        chunks.append(_join(current))
    return chunks


def chunk_document(text: str, config: ChunkConfig | None = None, markdown: bool = True) -> list[Chunk]:
    """Sections then passages of one document, with document-local stable keys.

    Args:
        text: The document (front matter already removed).
        config: Passage size and overlap.
        markdown: Whether the text is Markdown (headings) or plain text.

    Returns:
        Chunks in document order; sections without text give none.
    """
    config = config or ChunkConfig()
    chunks: list[Chunk] = []
    for section in split_sections(text, markdown=markdown):
        for index, passage in enumerate(chunk_text(section.body, config.max_chars, config.overlap_chars)):
            chunks.append(Chunk(section.slug, index, section.headings, passage, section.line))
    return chunks


__all__ = [
    "TOP_SLUG",
    "Chunk",
    "Section",
    "chunk_document",
    "chunk_text",
    "slugify",
    "split_sections",
]
