"""The unit of the knowledge base: :class:`Entry` (an FAQ, a document passage or a past dialogue)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any, Literal

EntryKind = Literal["faq", "doc", "dialogue"]
ENTRY_KINDS: tuple[str, ...] = ("faq", "doc", "dialogue")


@dataclass(frozen=True)
class Entry:
    """One retrievable item of the knowledge base.

    Attributes:
        id: Unique id (see :mod:`apps.customer_service.sources` for how it is made).
        kind: ``faq``, ``doc`` (a document passage) or ``dialogue``.
        question: The FAQ or customer question; empty for document passages.
        text: The answer (FAQ, dialogue) or the passage text (doc).
        title: Display title: the FAQ title (default: the question), or ``Doc › Section`` for passages.
        url: Link to the source, if known.
        category: Free-form category, if given.
        source: The file it came from, as used in default ids.
        content_hash: Hash of the text that gets embedded (:meth:`question_field`,
            :meth:`content_field`); an entry is re-embedded only when it changes.
    """

    id: str
    kind: EntryKind
    question: str
    text: str
    title: str
    url: str | None = None
    category: str | None = None
    source: str = ""
    content_hash: str = ""

    def __post_init__(self) -> None:
        if self.kind not in ENTRY_KINDS:
            raise ValueError(f"Entry {self.id!r}: kind must be one of {ENTRY_KINDS}, got {self.kind!r}")
        if not self.content_hash:
            object.__setattr__(self, "content_hash", self.compute_hash())

    def question_field(self) -> str:
        """Text matched as the *question* field: the question, or the title for passages."""
        return self.question or self.title

    def content_field(self) -> str:
        """Text matched as the *content* field: the answer, or title and passage for documents."""
        return f"{self.title}\n{self.text}" if self.kind == "doc" else self.text

    def compute_hash(self) -> str:
        """SHA-256 (first 16 hex digits) of the kind and both field texts."""
        payload = json.dumps([self.kind, self.question_field(), self.content_field()], ensure_ascii=False)
        return hashlib.sha256(payload.encode("utf-8")).hexdigest()[:16]

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable fields (one line of ``entries.jsonl``)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Entry:
        """Inverse of :meth:`to_dict`; the stored hash must match the text.

        Raises:
            ValueError: Missing or unknown fields, or a hash that does not match the text.
        """
        entry = cls(**dict(data))
        if entry.content_hash != entry.compute_hash():
            raise ValueError(f"entry {entry.id!r}: content_hash does not match its text")
        return entry


__all__ = ["ENTRY_KINDS", "Entry", "EntryKind"]
