"""Candidate generation: text ANN, item-item co-occurrence and popular items, unioned per user.

For each user the generator gathers

* **text**: the nearest items to the user's recency-weighted history vector in a
  :class:`core.index.VectorIndex` of item text vectors (this is how items with text but no
  interactions, cold items, enter);
* **cf**: the items with the highest ItemKNN score (sum of co-occurrence similarities from the
  user's history; only positive scores);
* **popular**: the most interacted-with items in training;

then de-duplicates them, excludes items the user has seen in training, and reports for every
candidate which sources proposed it plus its text similarity, CF score and popularity (computed
for every candidate, whichever source proposed it, so a ranker can use them as features).

Users unknown to the training data, or without history, have no history vector and no CF
scores: they get the popular candidates only (documented fallback).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from apps.recommender.baselines import ItemKNNScorer
from apps.recommender.data import Dataset
from apps.recommender.text_vectors import history_matrix, normalise
from core.index import VectorIndex

logger = logging.getLogger(__name__)

SOURCES = ("text", "cf", "popular")


@dataclass(frozen=True)
class CandidateConfig:
    """How many candidates each source contributes."""

    n_text: int = field(default=100, metadata={"help": "nearest items to the user's text vector"})
    n_cf: int = field(default=100, metadata={"help": "items with the highest item-item co-occurrence score"})
    n_popular: int = field(default=50, metadata={"help": "most popular unseen items"})
    half_life: float | None = field(
        default=10.0, metadata={"help": "recency half-life of the history vector"}
    )
    max_history: int | None = field(default=50, metadata={"help": "most recent items in the history vector"})
    batch_size: int = field(default=256, metadata={"help": "users per batch"})

    def __post_init__(self) -> None:
        for name in ("n_text", "n_cf", "n_popular"):
            if getattr(self, name) < 0:
                raise ValueError(f"CandidateConfig.{name} must be >= 0, got {getattr(self, name)}")
        if self.batch_size < 1:
            raise ValueError(f"CandidateConfig.batch_size must be positive, got {self.batch_size}")


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
    """

    def __init__(
        self,
        train: Dataset,
        item_vectors: np.ndarray,
        index: VectorIndex | None = None,
        cf: ItemKNNScorer | None = None,
        config: CandidateConfig | None = None,
        embedding_model: str = "unknown",
    ) -> None:
        self.train = train
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

    def generate(self, user_ids: Sequence[str], show_progress_bar: bool = False) -> pd.DataFrame:
        """Candidates for each user.

        Args:
            user_ids: The users (unknown ids get popular candidates only).
            show_progress_bar: Show a tqdm bar over user batches.

        Returns:
            One row per (user, candidate): ``user_id``, ``item_id``, ``item_idx``, one boolean
            column per source (``from_text``, ``from_cf``, ``from_popular``), ``text_score``
            (cosine to the user's history vector; NaN without history), ``cf_score`` and
            ``popularity``. Rows are grouped by user in input order, items by index.
        """
        index = self.train.user_index
        users = np.array([index.get(str(u), -1) for u in user_ids], dtype=np.int64)
        frames = []
        starts = range(0, len(users), self.config.batch_size)
        for start in tqdm(starts, desc="Candidates", unit="batch", disable=not show_progress_bar):
            batch_ids = list(user_ids[start : start + self.config.batch_size])
            frames.append(self._batch(batch_ids, users[start : start + self.config.batch_size]))
        if not frames:
            return _empty()
        return pd.concat(frames, ignore_index=True)

    def _batch(self, user_ids: list[str], users: np.ndarray) -> pd.DataFrame:
        cfg = self.config
        known = users >= 0
        safe = np.where(known, users, 0)
        history = np.where(known, np.diff(self.seen.indptr)[safe], 0)
        active = history > 0
        vectors = normalise(np.asarray(self.weights[safe] @ self.item_vectors, dtype=np.float32))
        text_hits: list[list[str]] = [[] for _ in users]
        if cfg.n_text and active.any():
            rows = np.flatnonzero(active)
            k = min(cfg.n_text + int(history[rows].max()), self.train.n_items)
            ids, _ = self.index.search(vectors[rows], k)
            for r, found in zip(rows, ids, strict=True):
                text_hits[r] = found
        cf = (self.seen[safe] @ self.cf.similarity).tocsr()
        cf.sort_indices()
        item_index = self.train.item_index
        rows_out = []
        for r, user_id in enumerate(user_ids):
            seen = (
                self.seen.indices[self.seen.indptr[safe[r]] : self.seen.indptr[safe[r] + 1]]
                if active[r]
                else []
            )
            text = np.array([item_index[h] for h in text_hits[r]], dtype=np.int64)
            text = text[~np.isin(text, seen)][: cfg.n_text]
            lo, hi = (cf.indptr[r], cf.indptr[r + 1]) if active[r] else (0, 0)  # no history: no CF row
            cf_idx, cf_val = cf.indices[lo:hi], cf.data[lo:hi]
            cf_items = np.empty(0, dtype=np.int64)
            if active[r] and cfg.n_cf:
                ranked = cf_idx[np.lexsort((cf_idx, -cf_val))]
                cf_items = ranked[~np.isin(ranked, seen)][: cfg.n_cf]
            popular = self._popular_order[: cfg.n_popular + len(seen)]
            popular = popular[~np.isin(popular, seen)][: cfg.n_popular]
            items = np.union1d(np.union1d(text, cf_items), popular).astype(np.int64)
            pos = np.minimum(np.searchsorted(cf_idx, items), max(len(cf_idx) - 1, 0))
            hit = (cf_idx[pos] == items) if len(cf_idx) else np.zeros(len(items), dtype=bool)
            rows_out.append(
                pd.DataFrame(
                    {
                        "user_id": str(user_id),
                        "item_id": self.train.item_ids[items],
                        "item_idx": items,
                        "from_text": np.isin(items, text),
                        "from_cf": np.isin(items, cf_items),
                        "from_popular": np.isin(items, popular),
                        "text_score": self.item_vectors[items] @ vectors[r] if active[r] else np.nan,
                        "cf_score": np.where(hit, cf_val[pos] if len(cf_idx) else 0.0, 0.0).astype(
                            np.float32
                        ),
                        "popularity": self.popularity[items],
                    }
                )
            )
        return pd.concat(rows_out, ignore_index=True) if rows_out else _empty()


def _empty() -> pd.DataFrame:
    columns = ["user_id", "item_id", "item_idx", "from_text", "from_cf", "from_popular"]
    return pd.DataFrame({c: [] for c in [*columns, "text_score", "cf_score", "popularity"]})
