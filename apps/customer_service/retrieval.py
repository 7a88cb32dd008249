"""BM25, dense and hybrid retrieval over a :class:`~apps.customer_service.knowledge_base.KnowledgeBase`.

Every entry has two fields (question, content); each retriever scores a query against both and
combines them per entry (:func:`~apps.customer_service.fusion.combine_fields`), so a query can
match an FAQ by its question or by its answer.

* ``bm25``: Snowball-stemmed BM25 over all entries; entries without a shared word are not returned.
* ``dense``: cosine similarity of MiniLM (or the KB's encoder) embeddings; the top ``candidates``
  of each field index are pooled and scored exactly on both fields.
* ``hybrid``: both candidate lists fused by reciprocal rank (``fusion="rrf"``) or by a weighted
  sum of min-max / z-score normalised scores (``fusion="score"``).

Every :class:`Hit` carries the per-retriever scores (``bm25``, ``bm25_question``,
``bm25_content``, ``dense``, ``dense_question``, ``dense_content``) next to the score it was
ranked by, for confidence gates and for display.

Example:
    >>> retriever = Retriever(KnowledgeBase.load("kb"))
    >>> [h.id for h in retriever.search("can I get my order shipped to France", k=2)]
    ['ship-03', 'policies/shipping.md#international-shipping-0']
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from apps.customer_service.adaptation import load_encoder
from apps.customer_service.config import MODES, Mode, RetrievalConfig
from apps.customer_service.fusion import (
    combine_fields,
    reciprocal_rank_fusion,
    score_fusion,
)
from apps.customer_service.knowledge_base import KnowledgeBase
from apps.customer_service.sources import Entry
from core.embeddings import Embedder
from core.index import IndexMismatchError
from core.progress import progress_bar

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Hit:
    """One retrieved entry.

    Attributes:
        id: Entry id.
        title: Entry title.
        url: Entry url, if any.
        score: The score it was ranked by (RRF, fused, BM25 or cosine, depending on the mode).
        scores: Per-retriever and per-field raw scores computed for it.
        rank: 1-based rank.
        entry: The full entry (question, text, kind, category, source).
    """

    id: str
    title: str
    url: str | None
    score: float
    scores: dict[str, float]
    rank: int
    entry: Entry

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly view (without the entry text)."""
        return {
            "id": self.id,
            "title": self.title,
            "url": self.url,
            "score": self.score,
            "scores": dict(self.scores),
            "rank": self.rank,
            "kind": self.entry.kind,
        }


class Retriever:
    """Search a knowledge base by BM25, dense similarity or both.

    Args:
        kb: The knowledge base.
        config: Retrieval settings.
        embedder: Query encoder; default loads the KB's embedding model. Must be that model.

    Raises:
        IndexMismatchError: ``embedder`` is not the model that built the KB's vectors.
    """

    def __init__(
        self, kb: KnowledgeBase, config: RetrievalConfig | None = None, embedder: Embedder | None = None
    ) -> None:
        self.kb = kb
        self.config = config or RetrievalConfig()
        self._embedder = embedder
        if embedder is not None and (embedder.model_id != kb.embedding_model or embedder.dim != kb.dim):
            raise IndexMismatchError(
                f"query encoder {embedder.model_id!r} (dim {embedder.dim}) differs from the knowledge base's "
                f"{kb.embedding_model!r} (dim {kb.dim})"
            )

    @property
    def embedder(self) -> Embedder:
        """The query encoder (loaded on first use)."""
        if self._embedder is None:
            # The KB's adapted encoder when it has one, so queries and entries share it.
            self._embedder = load_encoder(self.kb.path, self.kb.manifest)
        return self._embedder

    def search(self, query: str, k: int = 5, mode: Mode | None = None) -> list[Hit]:
        """Top-``k`` entries for one query (see :meth:`search_many`)."""
        return self.search_many([query], k=k, mode=mode)[0]

    def search_many(
        self, queries: Sequence[str], k: int = 5, mode: Mode | None = None, show_progress_bar: bool = False
    ) -> list[list[Hit]]:
        """Top-``k`` entries per query, best first.

        Args:
            queries: The queries.
            k: Hits per query (fewer when BM25 matches fewer entries, or the KB is smaller).
            mode: Override of ``config.mode``.
            show_progress_bar: Show a tqdm bar over queries.

        Returns:
            One list of :class:`Hit` per query.

        Raises:
            ValueError: ``k`` below 1, an unknown mode, or an empty query.
        """
        mode = mode or self.config.mode
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        if k < 1:
            raise ValueError(f"k must be positive, got {k}")
        if isinstance(queries, str):
            raise TypeError("search_many() takes a list of queries; use search() for one")
        for i, query in enumerate(queries):
            if not isinstance(query, str) or not query.strip():
                raise ValueError(f"query {i} is empty")
        n_cand = max(k, self.config.candidates)
        vectors = self.embedder.encode(list(queries)) if mode != "bm25" else None
        pools = self._dense_pools(vectors, n_cand) if vectors is not None else [[] for _ in queries]
        results = []
        for i, query in enumerate(progress_bar(queries, desc="Retrieving", disable=not show_progress_bar)):
            bm25 = self._bm25_scores(query) if mode != "dense" else None
            vector = vectors[i] if vectors is not None else None
            results.append(self._rank(mode, k, n_cand, bm25, vector, pools[i]))
        return results

    def search_vectors(self, vectors: np.ndarray, k: int = 5) -> list[list[Hit]]:
        """Top-``k`` entries by dense similarity to ready query vectors (e.g. the centroid of a
        group of questions), best first; scored like ``mode="dense"``.

        Raises:
            ValueError: ``k`` below 1.
            IndexMismatchError: Vectors of another dimension than the KB's.
        """
        if k < 1:
            raise ValueError(f"k must be positive, got {k}")
        vectors = np.atleast_2d(np.asarray(vectors, dtype=np.float32))
        n_cand = max(k, self.config.candidates)
        pools = self._dense_pools(vectors, n_cand)
        return [
            self._rank("dense", k, n_cand, None, vector, pool)
            for vector, pool in zip(vectors, pools, strict=True)
        ]

    # ----------------------------------------------------------------------------- scoring
    def _bm25_scores(self, query: str) -> dict[str, np.ndarray]:
        """Combined and per-field BM25 scores of every entry (arrays in KB order)."""
        fields = self.kb.bm25.scores(query)
        cfg = self.config
        combined = combine_fields(
            fields["question"], fields["content"], cfg.field_combine, cfg.question_weight
        )
        return {"bm25": combined, "bm25_question": fields["question"], "bm25_content": fields["content"]}

    def _dense_pools(self, vectors: np.ndarray, n_cand: int) -> list[list[str]]:
        """Per query, the union of the top ``n_cand`` ids of each field index."""
        pools: list[dict[str, None]] = [{} for _ in range(len(vectors))]
        for index in self.kb.dense.values():
            ids, _ = index.search(vectors, n_cand)
            for pool, row in zip(pools, ids, strict=True):
                pool.update(dict.fromkeys(row))
        return [list(pool) for pool in pools]

    def _dense_scores(self, vector: np.ndarray, ids: list[str]) -> dict[str, dict[str, float]]:
        """Exact cosine scores of ``ids`` on both fields, and their combination."""
        if not ids:
            return {}
        question = self.kb.dense["question"].get_vectors(ids) @ vector
        content = self.kb.dense["content"].get_vectors(ids) @ vector
        cfg = self.config
        combined = combine_fields(question, content, cfg.field_combine, cfg.question_weight)
        return {
            id_: {"dense": float(c), "dense_question": float(q), "dense_content": float(a)}
            for id_, c, q, a in zip(ids, combined, question, content, strict=True)
        }

    def _rank(
        self,
        mode: str,
        k: int,
        n_cand: int,
        bm25: dict[str, np.ndarray] | None,
        vector: np.ndarray | None,
        pool: list[str],
    ) -> list[Hit]:
        entries = self.kb.entries
        bm25_rank: list[str] = []
        if bm25 is not None:
            combined = bm25["bm25"]
            top = np.argsort(-combined, kind="stable")[:n_cand]
            bm25_rank = [entries[i].id for i in top if combined[i] > 0]
        candidates = list(dict.fromkeys(bm25_rank + pool))
        dense = self._dense_scores(vector, candidates) if vector is not None else {}
        dense_rank = sorted(pool, key=lambda i: -dense[i]["dense"])[:n_cand]
        scores: dict[str, dict[str, float]] = {}
        for id_ in dict.fromkeys(bm25_rank + dense_rank):
            row: dict[str, float] = {}
            if bm25 is not None:
                pos = self.kb.position(id_)
                row.update({name: float(values[pos]) for name, values in bm25.items()})
            row.update(dense.get(id_, {}))
            scores[id_] = row
        if mode == "bm25":
            ranked = {i: scores[i]["bm25"] for i in bm25_rank}
        elif mode == "dense":
            ranked = {i: scores[i]["dense"] for i in dense_rank}
        else:
            ranked = self._fuse(bm25_rank, dense_rank, scores)
        hits = []
        for rank, (id_, score) in enumerate(list(ranked.items())[:k], start=1):
            entry = self.kb.get(id_)
            hits.append(Hit(id_, entry.title, entry.url, float(score), scores[id_], rank, entry))
        return hits

    def _fuse(
        self, bm25_rank: list[str], dense_rank: list[str], scores: dict[str, dict[str, float]]
    ) -> dict[str, float]:
        cfg = self.config
        weights = [1.0 - cfg.dense_weight, cfg.dense_weight]
        if cfg.fusion == "rrf":
            # RRF weights are relative; 2x keeps the unweighted default (0.5, 0.5) equal to plain RRF.
            fused = reciprocal_rank_fusion(
                [bm25_rank, dense_rank], k=cfg.rrf_k, weights=[2 * w for w in weights]
            )
        else:
            # Every candidate has both scores: BM25 covers all entries, dense is exact on the pool.
            bm25_scores = {i: s["bm25"] for i, s in scores.items()}
            dense_scores = {i: s["dense"] for i, s in scores.items()}
            fused = score_fusion([bm25_scores, dense_scores], weights=weights, method=cfg.normalization)
        for id_, value in fused.items():
            scores[id_]["rrf" if cfg.fusion == "rrf" else "fused"] = value
        return fused


__all__ = ["Hit", "Retriever"]
