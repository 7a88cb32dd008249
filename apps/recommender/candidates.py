"""Candidate generation: text ANN, item-item co-occurrence and popular items, unioned per user.

For each user the generator gathers

* **text**: the nearest items to the user's recency-weighted history vector in a
  :class:`core.index.VectorIndex` of item text vectors (this is how items with text but no
  interactions, cold items, enter);
* **cf**: the items with the highest ItemKNN score (sum of co-occurrence similarities from the
  user's history; only positive scores);
* **popular**: the most interacted-with items in training;
* **ease** (when an :class:`~apps.recommender.baselines.EASEScorer` is given): the items with the
  highest EASE score;

then de-duplicates them, excludes items the user has seen in training, and reports for every
candidate which sources proposed it plus its text similarity, CF score, popularity (and EASE
score), computed for every candidate whichever source proposed it, so a ranker can use them as
features.

A batch of users is computed as arrays: each source yields ``row * n_items + item`` keys (seen
items dropped by binary search on the sorted keys of the history matrix), the union is one
``np.unique``, and the scores are gathered for all candidates at once; there is no per-user frame
or loop. Text neighbours come from one dense product with the item vectors while the index is
exact (``flat``), and from the index's approximate search once ``auto`` has switched it to HNSW or
IVF (large catalogues).

Users unknown to the training data, or without history, have no history vector and no CF
scores: they get the popular candidates only (documented fallback).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy import sparse

from apps.recommender.baselines import EASEScorer, ItemKNNScorer
from apps.recommender.config import CandidateConfig
from apps.recommender.interactions import Dataset
from apps.recommender.text_vectors import history_matrix, normalise
from core.index import VectorIndex
from core.progress import progress_bar

logger = logging.getLogger(__name__)

SOURCES = ("text", "cf", "popular", "ease")
#: Up to this catalogue size (with an exact index) a batch's scores are computed as dense rows.
DENSE_ITEMS = 50_000


def build_item_index(dataset: Dataset, item_vectors: np.ndarray, embedding_model: str) -> VectorIndex:
    """A :class:`VectorIndex` of item vectors keyed by item id (exact search below 50k items)."""
    if len(item_vectors) != dataset.n_items:
        raise ValueError(f"{len(item_vectors)} item vectors for {dataset.n_items} items in {dataset.name}")
    index = VectorIndex(item_vectors.shape[1], embedding_model)
    index.add(dataset.item_ids.tolist(), normalise(np.asarray(item_vectors, dtype=np.float32)))
    return index


class CandidateGenerator:
    """Union of text-ANN, co-occurrence and popular candidates for users of a training dataset.

    Args:
        train: The training data (catalogue, user map, histories).
        item_vectors: ``(n_items, dim)`` item text vectors in item-index order.
        index: Vector index over the same items (keyed by item id); built when ``None``.
        cf: A fitted :class:`ItemKNNScorer` on ``train``; fitted here when ``None``.
        config: Candidate counts and history weighting.
        embedding_model: Id recorded in a newly built index.
        ease: A fitted :class:`EASEScorer` on ``train``: a fourth source (``from_ease``) and the
            ``ease_score`` of every candidate; ``None`` leaves both out.
    """

    def __init__(
        self,
        train: Dataset,
        item_vectors: np.ndarray,
        index: VectorIndex | None = None,
        cf: ItemKNNScorer | None = None,
        config: CandidateConfig | None = None,
        embedding_model: str = "unknown",
        ease: EASEScorer | None = None,
    ) -> None:
        self.train = train
        self.ease = ease
        if ease is not None and ease.train.n_items != train.n_items:
            raise ValueError("the EASE scorer was fit on another catalogue")
        self.config = config or CandidateConfig()
        self.item_vectors = normalise(np.asarray(item_vectors, dtype=np.float32))
        self.index = (
            index if index is not None else build_item_index(train, self.item_vectors, embedding_model)
        )
        if len(self.index) != train.n_items:
            raise ValueError(
                f"the vector index holds {len(self.index)} items but {train.name} has {train.n_items}"
            )
        self.cf = cf if cf is not None else ItemKNNScorer().fit(train)
        if self.cf.train.n_items != train.n_items:
            raise ValueError("the ItemKNN scorer was fit on another catalogue")
        self.seen = train.user_item_matrix()
        self.weights = history_matrix(
            train.histories(), train.n_items, self.config.half_life, self.config.max_history
        )
        self.popularity = train.item_counts().astype(np.float32)
        self._popular_order = np.argsort(-self.popularity, kind="stable")
        self._id_positions = pd.Index(train.item_ids)
        self._outside_ease = np.ones(train.n_items, dtype=bool)
        if ease is not None and ease.items is not None:
            self._outside_ease[ease.items] = False

    def generate(self, user_ids: Sequence[str], show_progress_bar: bool = False) -> pd.DataFrame:
        """Candidates for each user.

        Args:
            user_ids: The users (unknown ids get popular candidates only).
            show_progress_bar: Show a tqdm bar over user batches.

        Returns:
            One row per (user, candidate): ``user_id``, ``user_idx`` (-1 for an unknown user),
            ``item_id``, ``item_idx``, one boolean
            column per source (``from_text``, ``from_cf``, ``from_popular``), ``text_score``
            (cosine to the user's history vector; NaN without history), ``cf_score`` and
            ``popularity``. Rows are grouped by user in input order, items by index.
        """
        index = self.train.user_index
        users = np.array([index.get(str(u), -1) for u in user_ids], dtype=np.int64)
        frames = []
        starts = range(0, len(users), self.config.batch_size)
        for start in progress_bar(starts, desc="Candidates", unit="batch", disable=not show_progress_bar):
            batch_ids = list(user_ids[start : start + self.config.batch_size])
            frames.append(self._batch(batch_ids, users[start : start + self.config.batch_size]))
        if not frames:
            return _empty()
        return pd.concat(frames, ignore_index=True)

    def _batch(self, user_ids: list[str], users: np.ndarray) -> pd.DataFrame:
        """One batch, as arrays: (row, item) keys ``row * n_items + item``, no per-user frames."""
        cfg = self.config
        n_items = self.train.n_items
        known = users >= 0
        safe = np.where(known, users, 0)
        active = known & (np.diff(self.seen.indptr)[safe] > 0)
        seen = self.seen[safe].multiply(active[:, None].astype(np.float32)).tocsr()
        seen.eliminate_zeros()
        seen.sort_indices()
        seen_keys = matrix_keys(seen)
        vectors = normalise(np.asarray(self.weights[safe] @ self.item_vectors, dtype=np.float32))
        vectors[~active] = 0.0
        rows = np.flatnonzero(active)
        max_seen = int(np.diff(seen.indptr).max(initial=0))
        cf = (seen @ self.cf.similarity).tocsr()
        dense = self.index.kind == "flat" and n_items <= DENSE_ITEMS
        if dense:
            # Small catalogue: whole rows of scores are cheap, and top-n by partition beats sorting.
            text = vectors @ self.item_vectors.T
            text_keys = _dense_top(text[rows], seen, cfg.n_text, rows) if cfg.n_text else _none()
            cf_dense = cf.toarray()
            positive = np.where(cf_dense > 0, cf_dense, -np.inf)
            cf_top = _dense_top(positive[rows], seen, cfg.n_cf, rows) if cfg.n_cf else _none()
        else:
            text_keys = self._text_keys(vectors, rows, seen_keys, max_seen) if cfg.n_text else _none()
            cf.sort_indices()
            cf_keys = matrix_keys(cf)
            pick = (cf.data > 0) & ~isin_sorted(cf_keys, seen_keys)
            cf_top = _first_per_row(cf_keys[pick], -cf.data[pick], n_items, cfg.n_cf) if cfg.n_cf else _none()
        ease_scores, ease_top = None, _none()
        if self.ease is not None:
            ease_scores = self.ease.item_scores(seen)
            if cfg.n_ease and len(rows):
                eligible = ease_scores[rows]
                eligible[:, self._outside_ease] = -np.inf
                ease_top = _dense_top(eligible, seen, cfg.n_ease, rows)
        popular = self._popular_order[: cfg.n_popular + max_seen]
        pop_keys = (np.arange(len(users))[:, None] * n_items + popular[None, :]).ravel()
        pop_keys = _first_per_row(pop_keys[~isin_sorted(pop_keys, seen_keys)], None, n_items, cfg.n_popular)
        keys = np.unique(np.concatenate([text_keys, cf_top, ease_top, pop_keys]))
        r, items = keys // n_items, keys % n_items
        if dense:
            text_score, cf_score = text[r, items], cf_dense[r, items]
        else:
            text_score = np.einsum("ij,ij->i", self.item_vectors[items], vectors[r])
            pos = np.minimum(np.searchsorted(cf_keys, keys), max(len(cf_keys) - 1, 0))
            hit = cf_keys[pos] == keys if len(cf_keys) else np.zeros(len(keys), dtype=bool)
            cf_score = np.where(hit, cf.data[pos] if len(cf_keys) else 0.0, 0.0)
        columns = {
            "user_id": np.asarray([str(u) for u in user_ids], dtype=object)[r],
            "user_idx": users[r],
            "item_id": self.train.item_ids[items],
            "item_idx": items,
            "from_text": isin_sorted(keys, text_keys),
            "from_cf": isin_sorted(keys, cf_top),
            "from_popular": isin_sorted(keys, pop_keys),
            "text_score": np.where(active[r], text_score, np.nan).astype(np.float32),
            "cf_score": np.asarray(cf_score, dtype=np.float32),
            "popularity": self.popularity[items],
        }
        if ease_scores is not None:
            columns["from_ease"] = isin_sorted(keys, ease_top)
            columns["ease_score"] = np.where(active[r], ease_scores[r, items], 0.0).astype(np.float32)
        return pd.DataFrame(columns)

    def _text_keys(
        self,
        vectors: np.ndarray,
        rows: np.ndarray,
        seen_keys: np.ndarray,
        max_seen: int,
    ) -> np.ndarray:
        """Keys of the ``n_text`` nearest unseen items per active row, searched in the vector index."""
        n_items, n = self.train.n_items, self.config.n_text
        if not len(rows):
            return _none()
        ids, _ = self.index.search(vectors[rows], min(n + max_seen, n_items))
        found = self._id_positions.get_indexer(np.asarray(ids, dtype=object).ravel()).reshape(len(rows), -1)
        keys = (rows[:, None] * n_items + found).ravel()[found.ravel() >= 0]
        return _first_per_row(keys[~isin_sorted(keys, seen_keys)], None, n_items, n, presorted=True)


def _none() -> np.ndarray:
    return np.empty(0, dtype=np.int64)


def matrix_keys(matrix: sparse.csr_matrix) -> np.ndarray:
    """``row * n_cols + col`` of a CSR matrix's stored entries (sorted when its indices are)."""
    rows = np.repeat(np.arange(matrix.shape[0], dtype=np.int64), np.diff(matrix.indptr))
    return rows * matrix.shape[1] + matrix.indices.astype(np.int64)


def isin_sorted(keys: np.ndarray, sorted_keys: np.ndarray) -> np.ndarray:
    """Membership of ``keys`` in a sorted key array (binary search, no hashing)."""
    if not len(sorted_keys):
        return np.zeros(len(keys), dtype=bool)
    pos = np.minimum(np.searchsorted(sorted_keys, keys), len(sorted_keys) - 1)
    return sorted_keys[pos] == keys


def _first_per_row(
    keys: np.ndarray, order: np.ndarray | None, n_cols: int, n: int, presorted: bool = False
) -> np.ndarray:
    """The first ``n`` keys of each row, by ``order`` (ties by column) or as given; returned sorted.

    Args:
        keys: ``row * n_cols + col`` keys (grouped by row when ``presorted``).
        order: Sort value within a row (lower first); ``None`` keeps the given order.
        n_cols: Columns per row.
        n: Keys kept per row.
        presorted: Keys are already grouped by row in rank order.
    """
    if not len(keys) or n <= 0:
        return _none()
    rows = keys // n_cols
    if order is not None:
        perm = np.lexsort((keys % n_cols, order, rows))
    elif presorted:
        perm = np.arange(len(keys))
    else:
        perm = np.argsort(rows, kind="stable")
    keys, rows = keys[perm], rows[perm]
    starts = np.flatnonzero(np.r_[True, rows[1:] != rows[:-1]])
    rank = np.arange(len(keys)) - np.repeat(starts, np.diff(np.r_[starts, len(keys)]))
    return np.sort(keys[rank < n])


def _dense_top(
    scores: np.ndarray, seen: sparse.csr_matrix, n: int, rows: np.ndarray | None = None
) -> np.ndarray:
    """Keys of the ``n`` best unseen finite scores per row of ``scores`` (deterministic ties).

    Args:
        scores: ``(len(rows), n_cols)`` scores, or one row per row of ``seen`` when ``rows`` is None.
        seen: Rows x columns of excluded entries.
        n: Best entries kept per row.
        rows: Row numbers (in ``seen``) of the rows of ``scores``.
    """
    rows = np.arange(scores.shape[0]) if rows is None else rows
    scores = np.array(scores, dtype=np.float32)
    block = seen[rows].tocoo()
    scores[block.row, block.col] = -np.inf
    n_cols = scores.shape[1]
    n = min(n, n_cols)
    part = np.sort(np.argpartition(-scores, n - 1, axis=1)[:, :n], axis=1) if n < n_cols else None
    if part is None:
        part = np.broadcast_to(np.arange(n_cols), scores.shape)
    values = np.take_along_axis(scores, part, axis=1)
    keep = np.isfinite(values)
    keys = rows[:, None].astype(np.int64) * n_cols + part
    return np.sort(keys[keep])


def _empty() -> pd.DataFrame:
    columns = ["user_id", "user_idx", "item_id", "item_idx", "from_text", "from_cf", "from_popular"]
    return pd.DataFrame({c: [] for c in [*columns, "text_score", "cf_score", "popularity"]})
