"""Read Markdown and plain-text documents into passage entries.

Passages come from :func:`apps.customer_service.chunking.chunk_document`; a passage's id is
``{label}#{heading-slug}-{n}`` where ``label`` is the file name (or the folder-relative path the
caller passes). An optional YAML front matter block at the top of a file (``---`` … ``---``)
may set ``title``, ``url`` and ``category``; the block's lines are blanked, so line numbers in
messages still match the file. Without a ``title`` the first heading is the title, else the
file name (``store-hours.txt`` -> ``Store hours``). A passage's title is the heading path,
``Doc title › Section › Subsection``, and its url the document url plus ``#{heading-slug}``.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping
from pathlib import Path

import yaml

from apps.customer_service.chunking import TOP_SLUG, chunk_document
from apps.customer_service.config import ChunkConfig
from apps.customer_service.entries import Entry
from apps.customer_service.errors import SourceError
from core.io.tables import read_text

logger = logging.getLogger(__name__)

DOC_SUFFIXES = (".md", ".markdown", ".txt")
_FRONT_MATTER = re.compile(r"\A---[ \t]*\r?\n(.*?)\r?\n---[ \t]*(?:\r?\n|\Z)", re.DOTALL)


def _front_matter(path: Path, text: str) -> tuple[dict[str, str], str]:
    match = _FRONT_MATTER.match(text)
    if match is None:
        return {}, text
    try:
        meta = yaml.safe_load(match.group(1)) or {}
    except yaml.YAMLError as err:
        raise SourceError(
            path, f"front matter is not valid YAML: {err}", line=1, field="front matter"
        ) from err
    if not isinstance(meta, dict):
        raise SourceError(path, "front matter must be a YAML mapping", line=1, field="front matter")
    out: dict[str, str] = {}
    for key in ("title", "url", "category"):
        value = meta.get(key)
        if value is not None and not isinstance(value, str | int | float):
            raise SourceError(path, f"expected text, got {type(value).__name__}", line=1, field=key)
        if value is not None and str(value).strip():
            out[key] = str(value).strip()
    # Keep line numbers of the body meaningful by replacing the block with blank lines.
    return out, "\n" * match.group(0).count("\n") + text[match.end() :]


def _doc_title(path: Path, meta: Mapping[str, str], headings: Iterable[tuple[str, ...]]) -> str:
    if "title" in meta:
        return meta["title"]
    for path_ in headings:
        if path_:
            return path_[0]
    stem = re.sub(r"[-_]+", " ", path.stem).strip()
    return stem[:1].upper() + stem[1:]


def read_document(
    path: str | Path, label: str | None = None, chunking: ChunkConfig | None = None
) -> list[Entry]:
    """Read a Markdown or text document into passage entries.

    Args:
        path: The file.
        label: Name used in ids and ``Entry.source`` (default: the file name).
        chunking: Passage size and overlap.

    Returns:
        Passages in document order (``[]`` for a document without text, with a warning).

    Raises:
        SourceError: Bad encoding or front matter.
    """
    path = Path(path)
    label = label or path.name
    meta, body = _front_matter(path, read_text(path, error=SourceError))
    markdown = path.suffix.lower() != ".txt"
    chunks = chunk_document(body, chunking, markdown=markdown)
    title = _doc_title(path, meta, (c.headings for c in chunks))
    entries = []
    for chunk in chunks:
        # The document title usually is the H1; do not repeat it in the passage title.
        headings = chunk.headings[1:] if chunk.headings[:1] == (title,) else chunk.headings
        url = meta.get("url")
        entries.append(
            Entry(
                id=f"{label}#{chunk.key}",
                kind="doc",
                question="",
                text=chunk.text,
                title=" › ".join((title, *headings)),
                url=f"{url}#{chunk.slug}" if url and chunk.slug != TOP_SLUG else url,
                category=meta.get("category"),
                source=label,
            )
        )
    if not entries:
        logger.warning("Document has no text", extra={"path": str(path)})
    return entries


def document_files(folder: str | Path) -> list[Path]:
    """Markdown and text files under ``folder`` (recursive, sorted, hidden files and folders skipped).

    Raises:
        SourceError: The folder holds no documents.
    """
    folder = Path(folder)
    files = [
        p
        for p in sorted(folder.rglob("*"))
        if p.is_file()
        and p.suffix.lower() in DOC_SUFFIXES
        and not any(part.startswith(".") for part in p.relative_to(folder).parts)
    ]
    if not files:
        raise SourceError(folder, f"folder holds no documents ({', '.join(DOC_SUFFIXES)})")
    return files


__all__ = ["DOC_SUFFIXES", "document_files", "read_document"]
