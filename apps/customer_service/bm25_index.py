"""Field-aware lexical (BM25) index over knowledge-base entries, built with the ``bm25s`` library.

One ``bm25s.BM25`` index per field (``question`` and ``content``, see
:meth:`apps.customer_service.sources.Entry.question_field`), document ``i`` of each being entry ``i``
of the knowledge base. Text is lower-cased, split into words of two or more characters, English
stop words are dropped and words are reduced to their Snowball stems (``refunds`` and
``refunded`` both match ``refund``), the same way for documents and queries.

On disk: ``config.json`` (tokenisation and BM25 parameters, document count) and one folder per
field written by ``bm25s``'s own ``save`` (NumPy arrays without pickle, JSON vocabulary).

BM25 statistics (document frequencies, average length) depend on the whole collection, so the
index is rebuilt from all entries on every re-index; that takes well under a second for
thousands of entries, unlike embedding.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import asdict
from functools import lru_cache
from pathlib import Path
from typing import Any

import bm25s
import numpy as np

from apps.customer_service.config import BM25Config
from apps.customer_service.errors import KBFormatError

logger = logging.getLogger(__name__)
# bm25s forces its logger to DEBUG on import; let it inherit the application's level instead.
if logging.getLogger("bm25s").level == logging.DEBUG:
    logging.getLogger("bm25s").setLevel(logging.NOTSET)

FIELDS: tuple[str, ...] = ("question", "content")
CONFIG_FILE = "config.json"


@lru_cache(maxsize=1)
def _snowball() -> Any:
    from nltk.stem.snowball import SnowballStemmer

    return SnowballStemmer("english")


@lru_cache(maxsize=200_000)
def _stem(word: str) -> str:
    return _snowball().stem(word)


def tokenize(texts: Sequence[str], config: BM25Config) -> list[list[str]]:
    """Lower-cased, stop-word-free, optionally stemmed word lists (the index's vocabulary)."""
    stemmer = (lambda words: [_stem(w) for w in words]) if config.stemmer == "snowball" else None
    tokens = bm25s.tokenize(
        list(texts),
        stopwords=config.stopwords or None,
        stemmer=stemmer,
        return_ids=False,
        show_progress=False,
    )
    return [list(t) for t in tokens]


class FieldBM25:
    """BM25 scores of a query against each entry's question and content fields.

    Args:
        indexes: One fitted ``bm25s.BM25`` per field in :data:`FIELDS`.
        n_docs: Number of entries indexed.
        config: The parameters the indexes were built with.
    """

    def __init__(self, indexes: dict[str, bm25s.BM25], n_docs: int, config: BM25Config) -> None:
        self.indexes = indexes
        self.n_docs = n_docs
        self.config = config

    @classmethod
    def build(
        cls,
        fields: dict[str, Sequence[str]],
        config: BM25Config | None = None,
        show_progress_bar: bool = False,
    ) -> FieldBM25:
        """Index the texts of each field (``fields[name][i]`` is entry ``i``'s text).

        Raises:
            ValueError: Missing fields or fields of different lengths.
        """
        config = config or BM25Config()
        if sorted(fields) != sorted(FIELDS):
            raise ValueError(f"FieldBM25 needs the fields {FIELDS}, got {sorted(fields)}")
        sizes = {name: len(texts) for name, texts in fields.items()}
        if len(set(sizes.values())) != 1:
            raise ValueError(f"fields hold different numbers of texts: {sizes}")
        indexes = {}
        for name in FIELDS:
            tokens = tokenize(fields[name], config)
            if tokens and not any(tokens):
                # bm25s cannot index a collection without a single word; a sentinel no query can
                # produce (queries only yield \w\w+ words) keeps every score at 0.
                tokens[0] = ["\x00"]
            index = bm25s.BM25(k1=config.k1, b=config.b, method=config.method)
            index.index(tokens, show_progress=show_progress_bar)
            indexes[name] = index
        return cls(indexes, sizes[FIELDS[0]], config)

    def scores(self, query: str) -> dict[str, np.ndarray]:
        """BM25 score of every entry per field (float32 arrays of length ``n_docs``; 0 = no match)."""
        tokens = tokenize([query], self.config)[0]
        out = {}
        for name, index in self.indexes.items():
            known = [t for t in tokens if t in index.vocab_dict]
            if known:
                out[name] = np.asarray(index.get_scores(known), dtype=np.float32)
            else:
                out[name] = np.zeros(self.n_docs, dtype=np.float32)
        return out

    def save(self, directory: str | Path) -> None:
        """Write ``config.json`` and one ``bm25s`` folder per field into ``directory``."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        for name, index in self.indexes.items():
            index.save(str(directory / name), show_progress=False)
        payload = {"config": asdict(self.config), "n_docs": self.n_docs, "fields": list(FIELDS)}
        (directory / CONFIG_FILE).write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")

    @classmethod
    def load(cls, directory: str | Path) -> FieldBM25:
        """Load an index written by :meth:`save`.

        Raises:
            KBFormatError: Missing or corrupt files, or fields with another document count.
        """
        directory = Path(directory)
        try:
            payload = json.loads((directory / CONFIG_FILE).read_text(encoding="utf-8"))
            config = BM25Config(**payload["config"])
            n_docs = int(payload["n_docs"])
        except (OSError, ValueError, KeyError, TypeError) as err:
            raise KBFormatError(f"BM25 index {directory / CONFIG_FILE} is missing or corrupt: {err}") from err
        indexes = {}
        for name in FIELDS:
            try:
                index = bm25s.BM25.load(str(directory / name), show_progress=False)
            except (OSError, ValueError, KeyError) as err:
                raise KBFormatError(f"BM25 index {directory / name} is missing or corrupt: {err}") from err
            if index.scores.get("num_docs") != n_docs:
                raise KBFormatError(
                    f"BM25 index {directory / name} holds {index.scores.get('num_docs')} documents, "
                    f"{directory / CONFIG_FILE} says {n_docs}"
                )
            indexes[name] = index
        return cls(indexes, n_docs, config)


__all__ = ["FIELDS", "FieldBM25", "tokenize"]
