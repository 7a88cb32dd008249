"""Cluster texts by meaning without fixing the number of clusters, and describe each cluster.

Given sentence embeddings (rows of unit length, e.g. from :class:`core.embeddings.Embedder`):

* :func:`cluster_vectors` groups them with scikit-learn, either agglomeratively (cosine distance,
  average linkage, merged while the clusters are closer than ``distance_threshold``) or with
  HDBSCAN (density-based, on the same cosine distances). Neither takes a cluster count. Clusters
  smaller than ``min_cluster_size`` are not clusters: their rows get ``-1`` ("unclustered"), like
  HDBSCAN's noise. Cluster ids run from 0, largest cluster first, so the output is deterministic;
* :func:`centrality_order` lists a cluster's rows from the most to the least typical one (cosine
  to the cluster's mean direction), for example questions and labels;
* :func:`mean_distances` is how far a new row is from each cluster (mean cosine distance to its
  members: what average linkage compares with the threshold);
* :func:`class_tfidf_terms` labels clusters with their most distinctive words (class-based TF-IDF,
  as in BERTopic: a term's frequency in the cluster times ``log(1 + average words per cluster /
  the term's frequency over all clusters)``).

Example:
    >>> vectors = Embedder("minilm-l6").encode(questions)
    >>> labels = cluster_vectors(vectors, ClusterConfig(distance_threshold=0.45))
    >>> class_tfidf_terms(questions, labels, top_n=3)[0]
    ['card', 'arrive', 'new card']
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

logger = logging.getLogger(__name__)

ClusterMethod = Literal["agglomerative", "hdbscan"]
Linkage = Literal["average", "complete", "single"]
UNCLUSTERED = -1


@dataclass(frozen=True)
class ClusterConfig:
    """How rows are grouped (no cluster count: the threshold or the density decides)."""

    method: ClusterMethod = field(
        default="agglomerative",
        metadata={"help": "agglomerative (cosine distance threshold) or hdbscan (density)"},
    )
    distance_threshold: float = field(
        default=0.5,
        metadata={"help": "agglomerative: clusters closer than this cosine distance are merged"},
    )
    linkage: Linkage = field(
        default="average", metadata={"help": "agglomerative: average, complete or single linkage"}
    )
    min_cluster_size: int = field(
        default=2,
        metadata={"help": "Smaller groups are unclustered (hdbscan: its min_cluster_size)"},
    )
    min_samples: int | None = field(
        default=None, metadata={"help": "hdbscan: neighbours a core point needs (None: min_cluster_size)"}
    )

    def __post_init__(self) -> None:
        checks = {
            "method": self.method in ("agglomerative", "hdbscan"),
            "linkage": self.linkage in ("average", "complete", "single"),
            "distance_threshold": 0.0 < self.distance_threshold <= 2.0,
            "min_cluster_size": self.min_cluster_size >= 2,
            "min_samples": self.min_samples is None or self.min_samples >= 1,
        }
        bad = [name for name, ok in checks.items() if not ok]
        if bad:
            raise ValueError(f"ClusterConfig: invalid value for {bad}: {[getattr(self, n) for n in bad]}")


def cosine_distances(vectors: np.ndarray) -> np.ndarray:
    """Pairwise cosine distances ``1 - cos`` of the rows (normalised here; clipped at 0)."""
    unit = _unit_rows(vectors)
    return np.clip(1.0 - unit @ unit.T, 0.0, 2.0)


def cluster_vectors(vectors: np.ndarray, config: ClusterConfig | None = None) -> np.ndarray:
    """Cluster ids per row: ``0`` is the largest cluster, ``-1`` marks rows in no cluster.

    Args:
        vectors: ``(n, dim)`` embeddings (any scale; compared by cosine).
        config: Method and its parameters.

    Returns:
        Integer array of length ``n``. Ties in size are ordered by the cluster's first row.

    Raises:
        ValueError: ``vectors`` is not a 2-D array.
    """
    config = config or ClusterConfig()
    vectors = np.asarray(vectors, dtype=np.float64)
    if vectors.ndim != 2:
        raise ValueError(f"vectors must be a 2-D array (rows, dim), got shape {vectors.shape}")
    n = len(vectors)
    if n < config.min_cluster_size:
        return np.full(n, UNCLUSTERED, dtype=int)
    distances = cosine_distances(vectors)
    if config.method == "hdbscan":
        from sklearn.cluster import HDBSCAN

        raw = HDBSCAN(
            min_cluster_size=config.min_cluster_size,
            min_samples=config.min_samples,
            metric="precomputed",
            copy=True,
        ).fit_predict(distances)
    else:
        from sklearn.cluster import AgglomerativeClustering

        raw = AgglomerativeClustering(
            n_clusters=None,
            metric="precomputed",
            linkage=config.linkage,
            distance_threshold=config.distance_threshold,
        ).fit_predict(distances)
    labels = _by_size(np.asarray(raw), config.min_cluster_size)
    logger.debug(
        "Clustered rows",
        extra={"rows": n, "clusters": int(labels.max()) + 1, "unclustered": int((labels < 0).sum())},
    )
    return labels


def _by_size(raw: np.ndarray, min_size: int) -> np.ndarray:
    """Renumber clusters largest first (then by first row); small ones and noise become -1."""
    groups: dict[int, list[int]] = {}
    for row, label in enumerate(raw.tolist()):
        if label >= 0:
            groups.setdefault(label, []).append(row)
    kept = sorted((rows for rows in groups.values() if len(rows) >= min_size), key=lambda r: (-len(r), r[0]))
    labels = np.full(len(raw), UNCLUSTERED, dtype=int)
    for new, rows in enumerate(kept):
        labels[rows] = new
    return labels


def centrality_order(vectors: np.ndarray, rows: Sequence[int]) -> list[int]:
    """``rows`` sorted from the most to the least central (cosine to their mean direction; stable)."""
    rows = list(rows)
    if len(rows) <= 1:
        return rows
    unit = _unit_rows(np.asarray(vectors, dtype=np.float64)[rows])
    scores = unit @ _unit_rows(unit.mean(axis=0, keepdims=True))[0]
    order = np.argsort(-scores, kind="stable")
    return [rows[i] for i in order]


def centroid(vectors: np.ndarray, rows: Sequence[int]) -> np.ndarray:
    """The unit-length mean direction of ``rows`` (float32, for index searches)."""
    unit = _unit_rows(np.asarray(vectors, dtype=np.float64)[list(rows)])
    return _unit_rows(unit.mean(axis=0, keepdims=True))[0].astype(np.float32)


def mean_distances(vectors: np.ndarray, labels: np.ndarray, queries: np.ndarray) -> np.ndarray:
    """Mean cosine distance of each query row to the members of each cluster: ``(queries, clusters)``."""
    labels = np.asarray(labels)
    k = int(labels.max()) + 1 if len(labels) and labels.max() >= 0 else 0
    if k == 0 or len(queries) == 0:
        return np.zeros((len(queries), k))
    sims = (
        _unit_rows(np.asarray(queries, dtype=np.float64))
        @ _unit_rows(np.asarray(vectors, dtype=np.float64)).T
    )
    return np.stack([1.0 - sims[:, labels == c].mean(axis=1) for c in range(k)], axis=1)


def class_tfidf_terms(
    texts: Sequence[str],
    labels: Sequence[int] | np.ndarray,
    top_n: int = 3,
    ngram_range: tuple[int, int] = (1, 2),
) -> dict[int, list[str]]:
    """The ``top_n`` most distinctive terms of each cluster (class-based TF-IDF).

    English stop words are dropped; a bigram is kept only when it scores at least as high as its
    words, and a word already inside a chosen bigram is skipped, so labels do not repeat themselves.

    Args:
        texts: One text per row.
        labels: Cluster id per row (``-1`` rows are ignored).
        top_n: Terms per cluster.
        ngram_range: Word n-grams considered.

    Returns:
        ``{cluster id: [term, ...]}`` for every cluster id ``>= 0`` (empty lists when a cluster has
        only stop words).
    """
    from sklearn.feature_extraction.text import CountVectorizer

    labels = np.asarray(labels)
    clusters = sorted(int(c) for c in set(labels.tolist()) if c >= 0)
    if not clusters:
        return {}
    docs = [" ".join(t for t, c in zip(texts, labels, strict=True) if c == cluster) for cluster in clusters]
    try:
        counts = CountVectorizer(stop_words="english", ngram_range=ngram_range).fit(docs)
    except ValueError:  # nothing but stop words anywhere
        return {c: [] for c in clusters}
    tf = counts.transform(docs).toarray().astype(np.float64)
    terms = counts.get_feature_names_out()
    words_per_class = tf.sum(axis=1).mean()
    idf = np.log(1.0 + words_per_class / np.maximum(tf.sum(axis=0), 1.0))
    scores = tf / np.maximum(tf.sum(axis=1, keepdims=True), 1.0) * idf
    out: dict[int, list[str]] = {}
    for row, cluster in enumerate(clusters):
        picked: list[str] = []
        for j in np.argsort(-scores[row], kind="stable"):
            if scores[row, j] <= 0 or len(picked) == top_n:
                break
            term = str(terms[j])
            if any(term in p.split() or p in term.split() for p in picked) or any(
                set(term.split()) <= set(p.split()) for p in picked
            ):
                continue
            picked.append(term)
        out[cluster] = picked
    return out


def _unit_rows(matrix: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return matrix / np.maximum(norms, 1e-12)


__all__ = [
    "UNCLUSTERED",
    "ClusterConfig",
    "ClusterMethod",
    "Linkage",
    "centrality_order",
    "centroid",
    "class_tfidf_terms",
    "cluster_vectors",
    "cosine_distances",
    "mean_distances",
]
