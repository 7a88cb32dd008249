"""Knowledge-base ingestion: read FAQ files, documents and past dialogues into :class:`Entry` records.

Sources (``kind="auto"`` picks one from the extension; a folder is read as documents):

* **FAQ** — CSV (header row), JSON (a list of objects, or an object whose ``entries`` or ``faqs``
  key holds one) or JSON Lines. Fields ``question`` and ``answer`` are required; ``id``,
  ``title``, ``url`` and ``category`` are optional, other fields are ignored. An entry's id is
  the given ``id`` as written; without one (no column, or an empty cell) it is
  ``{file name}#{row}`` with the 0-based record number, e.g. ``faq.csv#12``.
* **Documents** — Markdown (``.md``, ``.markdown``) or plain text (``.txt``), or a folder of them
  (searched recursively, hidden files skipped). Cut into passages by
  :mod:`apps.customer_service.chunking`; ids are ``{file}#{heading-slug}-{n}``, where ``{file}``
  is the file name, or ``{folder name}/{path inside the folder}`` for files found in a folder.
  An optional YAML front matter block (``---`` … ``---``) may set ``title``, ``url`` and
  ``category``; a passage's url is the document url plus ``#{heading-slug}``.
* **Dialogues** — JSON Lines of past support exchanges reduced to ``question`` → best ``answer``
  pairs, same optional fields as FAQs. Never picked by ``auto`` (``.jsonl`` means FAQ): name the
  kind, e.g. ``Source("past.jsonl", "dialogue")`` or ``"dialogue:past.jsonl"``.

Every entry id must be unique across all sources; clashes raise naming both places. All text is
stripped; files must be UTF-8 (a byte-order mark is dropped). FAQ and dialogue files are read by
core's table reader (:func:`core.io.tables.read_rows`, rows counted from 0, CSV header names
case-insensitive), documents by :func:`core.io.tables.read_text`. Every problem raises
:class:`~apps.customer_service.errors.SourceError` naming the file, row (and line) and field.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from apps.customer_service.config import ChunkConfig
from apps.customer_service.documents import DOC_SUFFIXES, document_files, read_document
from apps.customer_service.entries import ENTRY_KINDS, Entry, EntryKind
from apps.customer_service.errors import SourceError
from core.io.tables import Row, read_rows

logger = logging.getLogger(__name__)

SourceKind = Literal["auto", "faq", "doc", "dialogue"]
REQUIRED_FIELDS = ("question", "answer")
OPTIONAL_FIELDS = ("id", "title", "url", "category")
FAQ_SUFFIXES = (".csv", ".json", ".jsonl")


@dataclass(frozen=True)
class Source:
    """A file or folder to index, with its kind (``auto`` decides from the extension)."""

    path: Path
    kind: SourceKind = "auto"

    def __post_init__(self) -> None:
        object.__setattr__(self, "path", Path(self.path))
        if self.kind not in ("auto", *ENTRY_KINDS):
            raise ValueError(
                f"source {self.path}: kind must be auto, faq, doc or dialogue, got {self.kind!r}"
            )

    @classmethod
    def parse(cls, spec: str | Path | Source) -> Source:
        """``"faq.csv"``, ``"dialogue:past.jsonl"`` (``KIND:PATH`` with KIND faq, doc or dialogue)."""
        if isinstance(spec, Source):
            return spec
        text = str(spec)
        kind, sep, rest = text.partition(":")
        if sep and kind in ENTRY_KINDS and rest:
            return cls(Path(rest), kind)  # type: ignore[arg-type]
        return cls(Path(text))

    def resolved_kind(self) -> EntryKind:
        """The kind to read the source as.

        Raises:
            FileNotFoundError: The path does not exist.
            SourceError: ``auto`` cannot tell the kind from the extension.
        """
        if not self.path.exists():
            raise FileNotFoundError(f"knowledge-base source {self.path} does not exist")
        if self.kind != "auto":
            return self.kind
        if self.path.is_dir():
            return "doc"
        suffix = self.path.suffix.lower()
        if suffix in FAQ_SUFFIXES:
            return "faq"
        if suffix in DOC_SUFFIXES:
            return "doc"
        raise SourceError(
            self.path,
            f"unknown file type {suffix or '(none)'}: FAQ files are {', '.join(FAQ_SUFFIXES)}, "
            f"documents {', '.join(DOC_SUFFIXES)}; or name the kind as KIND:PATH",
        )


# ----------------------------------------------------------------------------------- records
#: Keys under which a JSON FAQ file may hold its list of records.
JSON_RECORD_KEYS = ("entries", "faqs")


def _string(path: Path, record: Row, name: str, required: bool) -> str | None:
    value = record.get(name)
    if value is None:
        if required:
            raise SourceError(path, "is missing", row=record.row, line=record.line, field=name)
        return None
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise SourceError(
            path, f"expected text, got {type(value).__name__}", row=record.row, line=record.line, field=name
        )
    text = str(value).strip()
    if required and not text:
        raise SourceError(path, "is empty", row=record.row, line=record.line, field=name)
    return text or None


def read_qa_file(
    path: str | Path, kind: Literal["faq", "dialogue"] = "faq", label: str | None = None
) -> list[Entry]:
    """Read an FAQ or dialogue file (CSV, JSON or JSON Lines) into entries.

    Args:
        path: The file.
        kind: ``faq`` or ``dialogue``.
        label: Name used in default ids and ``Entry.source`` (default: the file name).

    Returns:
        One entry per record, in file order.

    Raises:
        SourceError: Unsupported extension, bad encoding, malformed file, missing column or
            field, empty question or answer, or a duplicate id inside the file.
    """
    path = Path(path)
    label = label or path.name
    suffix = path.suffix.lower()
    if suffix not in FAQ_SUFFIXES:
        raise SourceError(
            path, f"{kind} files must be {', '.join(FAQ_SUFFIXES)}, got {suffix or '(no extension)'}"
        )
    records = read_rows(
        path,
        columns=REQUIRED_FIELDS if suffix == ".csv" else (),  # JSON: a missing key is named per record
        row_base=0,
        error=SourceError,
        lower_header=True,
        records_keys=JSON_RECORD_KEYS,
    )
    entries: list[Entry] = []
    seen: dict[str, int] = {}
    for record in records:
        question = _string(path, record, "question", required=True)
        answer = _string(path, record, "answer", required=True)
        given_id = _string(path, record, "id", required=False)
        entry_id = given_id or f"{label}#{record.row}"
        if entry_id in seen:
            problem = f"duplicate id {entry_id!r} (also row {seen[entry_id]})"
            raise SourceError(path, problem, row=record.row, line=record.line, field="id")
        seen[entry_id] = record.row
        entries.append(
            Entry(
                id=entry_id,
                kind=kind,
                question=question or "",
                text=answer or "",
                title=_string(path, record, "title", required=False) or question or "",
                url=_string(path, record, "url", required=False),
                category=_string(path, record, "category", required=False),
                source=label,
            )
        )
    if not entries:
        raise SourceError(path, "holds no records")
    logger.info("Read Q&A file", extra={"path": str(path), "kind": kind, "entries": len(entries)})
    return entries


# ------------------------------------------------------------------------------------ sources
def read_source(source: str | Path | Source, chunking: ChunkConfig | None = None) -> list[Entry]:
    """Read one source (file or folder) into entries.

    Args:
        source: A :class:`Source`, a path, or ``KIND:PATH``.
        chunking: Passage size and overlap for documents.

    Raises:
        FileNotFoundError: The path does not exist.
        SourceError: See :func:`read_qa_file` and :func:`read_document`.
    """
    source = Source.parse(source)
    kind = source.resolved_kind()
    path = source.path
    if kind == "doc":
        if not path.is_dir():
            return read_document(path, chunking=chunking)
        entries = []
        for file in document_files(path):
            entries += read_document(
                file, label=f"{path.name}/{file.relative_to(path).as_posix()}", chunking=chunking
            )
        return entries
    return read_qa_file(path, kind=kind)


def load_sources(sources: Sequence[str | Path | Source], chunking: ChunkConfig | None = None) -> list[Entry]:
    """Read all sources; entry ids must be unique across them.

    Args:
        sources: Files and folders (see :func:`read_source`).
        chunking: Passage size and overlap for documents.

    Returns:
        Entries in source order.

    Raises:
        ValueError: No sources, or an id produced by two sources.
        FileNotFoundError: A path does not exist.
        SourceError: A bad file (see :func:`read_source`).
    """
    if not sources:
        raise ValueError("no knowledge-base sources given")
    entries: list[Entry] = []
    origin: dict[str, str] = {}
    for spec in sources:
        source = Source.parse(spec)
        for entry in read_source(source, chunking):
            if entry.id in origin:
                raise SourceError(
                    source.path,
                    f"entry id {entry.id!r} is also produced by {origin[entry.id]}; ids must be unique "
                    "across sources (give FAQ rows an 'id', or rename one of the files)",
                    field="id",
                )
            origin[entry.id] = str(source.path)
            entries.append(entry)
    if not entries:
        raise ValueError(f"the sources {[str(s) for s in sources]} hold no entries")
    return entries


__all__ = [
    "ENTRY_KINDS",
    "Entry",
    "EntryKind",
    "Source",
    "SourceKind",
    "load_sources",
    "read_document",
    "read_qa_file",
    "read_source",
]
